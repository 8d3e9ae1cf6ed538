"""TLS files named in the database and broker URLs, checked once at start-up.

A missing or unreadable CA bundle, certificate or key would otherwise surface as an endless
run of reconnect attempts; checked here, it stops the process at once with one line naming
the setting and the file (never a password).
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

# Query parameters that name files (CA bundle, certificate, key): aiormq's
# (amqps://...?cafile=...) and libpq's.
_AMQP_FILES = ("cafile", "certfile", "keyfile")
_PG_FILES = ("sslrootcert", "sslcert", "sslkey")


def check_tls_files(database_url: str, amqp_urls: Sequence[str]) -> list[str]:
    """Every problem with a TLS file the URLs name, as ``setting: parameter path: why``."""
    problems = _problems("database_url", database_url, _PG_FILES)
    for url in amqp_urls:
        problems += _problems("amqp_url", url, _AMQP_FILES)
    return problems


def _problems(setting: str, url: str, names: tuple[str, str, str]) -> list[str]:
    ca, cert, key = names
    query = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items() if k in names}
    problems: list[str] = []
    for name, path in query.items():
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            problems.append(f"{setting}: {name} {path}: {exc.strerror}")
    if problems:
        return problems
    try:
        if ca in query:
            ssl.create_default_context(cafile=query[ca])
        if cert in query:
            ssl.create_default_context().load_cert_chain(query[cert], query.get(key))
    except (ssl.SSLError, ValueError) as exc:
        which = ", ".join(f"{n} {p}" for n, p in query.items())
        problems.append(
            f"{setting}: {which}: not a usable certificate or key ({exc.__class__.__name__})"
        )
    return problems
