"""Print deploy/rabbitmq/definitions.json with each user's password hash filled in.

The committed file has no password hashes. RabbitMQ re-imports ``load_definitions`` at
every boot, and a user imported without a hash has its password *cleared*, so the file a
cluster boots from must carry the hashes. This renders it from one environment variable per
user (``RABBITMQ_PASSWORD_PAYSYNC_INGEST`` for ``paysync-ingest``, ...), hashing each with
RabbitMQ's ``rabbit_password_hashing_sha256`` (base64 of a 4-byte salt + SHA-256(salt +
password)); the passwords themselves never reach the output::

    .venv/bin/python deploy/rabbitmq/render_definitions.py > /dev/shm/definitions.json
    kubectl -n rabbitmq create secret generic rabbitmq-definitions \\
        --from-file=definitions.json=/dev/shm/definitions.json

A user whose variable is unset is an error (``--allow-missing`` leaves it without a
password: it cannot log in until ``rabbitmqctl change_password``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFINITIONS = Path(__file__).with_name("definitions.json")
ALGORITHM = "rabbit_password_hashing_sha256"


def password_hash(password: str, salt: bytes | None = None) -> str:
    salt = secrets.token_bytes(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def env_name(user: str) -> str:
    return "RABBITMQ_PASSWORD_" + user.upper().replace("-", "_")


def render(
    definitions: dict[str, Any], env: Mapping[str, str], *, allow_missing: bool
) -> dict[str, Any]:
    missing = []
    for user in definitions["users"]:
        password = env.get(env_name(user["name"]))
        if password:
            user["password_hash"] = password_hash(password)
            user["hashing_algorithm"] = ALGORITHM
        elif not allow_missing:
            missing.append(env_name(user["name"]))
    if missing:
        raise SystemExit("render_definitions: not set: " + ", ".join(missing))
    return definitions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--allow-missing", action="store_true", help="leave such users passwordless"
    )
    args = parser.parse_args()
    definitions = json.loads(DEFINITIONS.read_text(encoding="utf-8"))
    rendered = render(definitions, os.environ, allow_missing=args.allow_missing)
    json.dump(rendered, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
