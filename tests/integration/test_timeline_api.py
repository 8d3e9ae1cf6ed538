"""The payment timeline against real Postgres: GET /v1/payments/... and `paysync payment show`.

Data is made the way production makes it: CCPayment envelopes applied by the worker's store.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
import structlog
from aiohttp import web
from multidict import CIMultiDictProxy

from ingest.app import build_app
from ingest.server import ingest_runner
from paysync.cli import commands
from paysync.connections import broker_of
from paysync.db import create_pool
from paysync.errors import ConfigError
from paysync.logging import configure_logging
from paysync.metrics import Metrics
from paysync.settings import Settings, load_settings
from providers import MAPPINGS, REGISTRY, account_models
from schemas.envelope import Envelope, EnvelopeKind
from simulator.ccpayment import signed, webhook_body
from tests.support.config import (
    ACCOUNT,
    API_TABLE,
    APP_ID,
    OLD_TOKEN_ENV,
    TOKEN_ENV,
    RunConfig,
    with_tokens,
    write_config,
)
from tests.support.process import PAYSYNC, running
from tests.support.services import BrokerNames
from tests.support.tcpproxy import TcpProxy
from worker.store import Store

pytestmark = pytest.mark.integration

REF = "order-tl-1"


@pytest.fixture
def api_config(tmp_path: Path, db_url: str, names: BrokerNames) -> RunConfig:
    return with_tokens(
        write_config(tmp_path, database_url=db_url, prefix=names.prefix, extra=API_TABLE)
    )


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_url, max_size=4)
    yield pool
    await pool.close()


def credit(ref: str, record: str, paid: str, due: str = "25") -> Envelope:
    body = webhook_body(
        merchant_ref=ref,
        record_id=record,
        order_id="o-" + ref,
        order_amount=Decimal(due),
        paid_amount=Decimal(paid),
    )
    return Envelope(
        message_id=str(uuid.uuid4()),
        kind=EnvelopeKind.CALLBACK,
        provider="ccpayment",
        account=ACCOUNT,
        received_at=datetime.now(UTC),
        body=body,
        content_type="application/json",
    )


async def pay_in_two_parts(pool: asyncpg.Pool, ref: str = REF) -> list[Envelope]:
    """10 of 25 (underpaid), the same credit resent by the provider, then 15 (paid)."""
    store = Store(pool, MAPPINGS)
    sent, outcomes = [], []
    for record, paid in [("rec-a", "10"), ("rec-a", "10"), ("rec-b", "15")]:
        env = credit(ref, record, paid)  # received just before it is applied
        sent.append(env)
        observations = REGISTRY[env.provider].parse_callback(env)
        outcomes += [o.outcome for o in await store.apply(env, observations)]
    assert outcomes == ["applied", "duplicate", "applied"]
    return sent


@asynccontextmanager
async def serving(settings: Settings, pool: asyncpg.Pool | None) -> AsyncIterator[str]:
    """ingest (with /v1 when given a pool) in this event loop; yields its base URL."""
    broker = broker_of(settings, "test")
    broker.start()
    await broker.wait_connected(10)
    app = build_app(settings, broker, REGISTRY, Metrics(), pool=pool)
    runner = ingest_runner(app, settings.ingest)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
        await broker.close()


async def get(
    url: str, token: str | None = None, authorization: str | None = None
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if authorization is not None:
        headers["Authorization"] = authorization
    timeout = aiohttp.ClientTimeout(total=20)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url, headers=headers) as resp,
    ):
        assert resp.content_type == "application/json"
        return resp.status, orjson.loads(await resp.read()), resp.headers


def payment_url(base: str, ref: str = REF) -> str:
    return f"{base}/v1/payments/ccpayment/{ACCOUNT}/{ref}"


def is_utc_time(value: object) -> bool:
    return isinstance(value, str) and value.endswith("Z") and "T" in value


async def test_the_timeline_shows_state_observations_transitions_and_events(
    api_config: RunConfig, pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    sent = await pay_in_two_parts(pool)
    async with serving(api_config.settings, pool) as base:
        status, doc, _ = await get(payment_url(base), api_config.env[TOKEN_ENV])
        # Either rotation token is accepted.
        assert (await get(payment_url(base), api_config.env[OLD_TOKEN_ENV]))[:2] == (200, doc)
    assert status == 200
    assert set(doc) == {"payment", "observations", "transitions", "events"}

    payment = doc["payment"]
    db_id = await db.fetchval("SELECT id FROM payments WHERE merchant_ref = $1", REF)
    assert payment["id"] == db_id
    assert (payment["provider"], payment["account"], payment["merchant_ref"]) == (
        "ccpayment",
        ACCOUNT,
        REF,
    )
    assert (payment["status"], payment["seq"]) == ("paid", 2)
    assert (payment["amount"], payment["amount_paid"], payment["amount_refunded"]) == (
        "25",
        "25",
        "0",
    )
    assert payment["late"] is False
    assert is_utc_time(payment["created_at"])
    assert is_utc_time(payment["updated_at"])
    columns = await db.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'payments'"
    )
    assert set(payment) == {c["column_name"] for c in columns}

    observations = doc["observations"]
    assert [o["outcome"] for o in observations] == ["applied", "duplicate", "applied"]
    assert [o["message_id"] for o in observations] == [e.message_id for e in sent]
    assert [o["raw"] for o in observations] == [e.body.decode() for e in sent]
    assert {o["raw_encoding"] for o in observations} == {"utf-8"}
    assert observations[0]["dedup_key"] == observations[1]["dedup_key"]
    assert observations[0]["dedup_key"] != observations[2]["dedup_key"]
    ids = [o["id"] for o in observations]
    assert ids == sorted(ids)
    for obs in observations:
        assert (obs["source"], obs["kind"]) == ("callback", "credit")
        assert obs["observation"]["kind"] == "credit"
        assert is_utc_time(obs["received_at"])
        assert is_utc_time(obs["applied_at"])

    transitions = doc["transitions"]
    assert [(t["seq"], t["from_status"], t["to_status"]) for t in transitions] == [
        (1, None, "underpaid"),
        (2, "underpaid", "paid"),
    ]
    assert [t["inbox_id"] for t in transitions] == [ids[0], ids[2]]
    assert {t["source"] for t in transitions} == {"callback"}

    events = doc["events"]
    assert [(e["seq"], e["routing_key"]) for e in events] == [
        (1, "payment.underpaid"),
        (2, "payment.paid"),
    ]
    for event in events:
        assert event["body"]["event_id"] == event["event_id"]
        assert event["body"]["payment"]["seq"] == event["seq"]
        assert event["published_at"] is None  # no relay ran
        assert is_utc_time(event["created_at"])
    assert [e["body"]["payment"]["amount_paid"] for e in events] == ["10", "25"]


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "missing_token"),
        ("Basic dXNlcjpwYXNz", "missing_token"),
        ("Bearer ", "missing_token"),
        ("Bearer not-a-configured-token", "bad_token"),
    ],
)
async def test_requests_without_a_configured_token_are_401(
    api_config: RunConfig, pool: asyncpg.Pool, authorization: str | None, reason: str
) -> None:
    await pay_in_two_parts(pool)
    async with serving(api_config.settings, pool) as base:
        status, body, headers = await get(payment_url(base), authorization=authorization)
    assert (status, body) == (401, {"error": reason})
    assert headers["WWW-Authenticate"] == "Bearer"


async def test_a_token_differing_in_its_last_character_is_rejected(
    api_config: RunConfig, pool: asyncpg.Pool
) -> None:
    token = api_config.env[TOKEN_ENV]
    near = token[:-1] + ("A" if token[-1] != "A" else "B")
    async with serving(api_config.settings, pool) as base:
        assert (await get(payment_url(base), near))[:2] == (401, {"error": "bad_token"})
        assert (await get(payment_url(base), token + "x"))[:2] == (401, {"error": "bad_token"})


async def test_an_unknown_payment_is_404(api_config: RunConfig, pool: asyncpg.Pool) -> None:
    await pay_in_two_parts(pool)
    async with serving(api_config.settings, pool) as base:
        token = api_config.env[TOKEN_ENV]
        assert (await get(payment_url(base, "nope"), token))[:2] == (
            404,
            {"error": "payment_not_found"},
        )
        other_account = f"{base}/v1/payments/ccpayment/other/{REF}"
        assert (await get(other_account, token))[:2] == (404, {"error": "payment_not_found"})


async def test_without_configured_tokens_the_api_is_disabled(
    config: RunConfig, pool: asyncpg.Pool
) -> None:
    await pay_in_two_parts(pool)
    assert config.settings.api.tokens == []
    async with serving(config.settings, pool) as base:
        for authorization in (None, "Bearer anything", "Bearer "):
            status, body, _ = await get(payment_url(base), authorization=authorization)
            assert (status, body) == (401, {"error": "api_disabled"})


async def test_an_app_built_without_a_pool_serves_no_v1(config: RunConfig) -> None:
    async with (
        serving(config.settings, None) as base,
        aiohttp.ClientSession() as session,
        session.get(payment_url(base), headers={"Authorization": "Bearer x"}) as resp,
    ):
        assert resp.status == 404


async def test_with_postgres_down_the_api_is_503_and_callbacks_are_still_accepted(
    tmp_path: Path, db_url: str, names: BrokerNames
) -> None:
    proxy = await TcpProxy("127.0.0.1", 5432).start()
    proxy.cut()
    config = with_tokens(
        write_config(
            tmp_path,
            database_url=db_url.replace(":5432/", f":{proxy.port}/"),
            prefix=names.prefix,
            extra=API_TABLE,
        )
    )
    assert f":{proxy.port}/" in config.settings.database_url
    token = config.env[TOKEN_ENV]
    # Lazy, as the runner makes it: creating it does not need Postgres.
    pool = await create_pool(config.settings.database_url, max_size=2)
    try:
        async with serving(config.settings, pool) as base:
            status, body, _ = await get(payment_url(base), token)
            assert (status, body) == (503, {"error": "database_unavailable"})

            body_bytes = webhook_body(
                merchant_ref="during-outage",
                record_id="rec-x",
                order_id="o-x",
                order_amount=Decimal("25"),
                paid_amount=Decimal("25"),
            )
            headers = signed(APP_ID, config.secret, body_bytes, int(time.time()))
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    f"{base}/webhooks/ccpayment/{ACCOUNT}", data=body_bytes, headers=headers
                ) as resp,
            ):
                assert (resp.status, await resp.text()) == (200, "success")

            proxy.restore()  # Postgres is back: the same pool answers
            status, body, _ = await get(payment_url(base, "nope"), token)
            assert (status, body) == (404, {"error": "payment_not_found"})
    finally:
        await pool.close()
        await proxy.close()


@contextmanager
def captured_logs(settings: Settings) -> Iterator[io.StringIO]:
    """Logging configured as the CLI does (scrubbing configured secrets), into a buffer."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out = io.StringIO()
    configure_logging("debug", settings.secret_values(), stream=out)
    try:
        yield out
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()


async def test_tokens_never_reach_the_logs(api_config: RunConfig, pool: asyncpg.Pool) -> None:
    await pay_in_two_parts(pool)
    settings = api_config.settings
    token, bad = api_config.env[TOKEN_ENV], "bad-" + secrets.token_urlsafe(24)
    with captured_logs(settings) as out:
        async with serving(settings, pool) as base:
            assert (await get(payment_url(base), token))[0] == 200
            assert (await get(payment_url(base), bad))[0] == 401
            assert (await get(payment_url(base, "nope"), token))[0] == 404
    text = out.getvalue()
    events = [orjson.loads(line)["event"] for line in text.splitlines()]
    assert {"timeline_served", "api_request_rejected", "payment_not_found"} <= set(events)
    for value in (token, api_config.env[OLD_TOKEN_ENV], bad):
        assert value not in text
    # Not even scrubbed: nothing tried to log a token.
    assert "[redacted]" not in text


def test_api_tokens_are_secrets_and_the_api_table_takes_env_overrides(
    api_config: RunConfig,
) -> None:
    settings = api_config.settings
    tokens = [api_config.env[OLD_TOKEN_ENV], api_config.env[TOKEN_ENV]]
    assert [t.reveal() for t in settings.api.tokens] == tokens
    assert [t.ref for t in settings.api.tokens] == [f"env:{OLD_TOKEN_ENV}", f"env:{TOKEN_ENV}"]
    assert set(tokens) <= set(settings.secret_values())
    assert all(t not in repr(settings) for t in tokens)
    # [api] is a section for env overrides: an unknown key is reported under api.
    env = api_config.env | {"PAYSYNC_API__NOPE": "1"}
    with pytest.raises(ConfigError) as info:
        load_settings(account_models(), path=api_config.path, env=env)
    assert info.value.problems == [
        "api.nope (from PAYSYNC_API__NOPE): Extra inputs are not permitted"
    ]


# --- paysync payment show -------------------------------------------------------------


async def test_payment_show_prints_the_timeline(
    api_config: RunConfig, pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    await pay_in_two_parts(pool)
    settings = api_config.settings
    assert await commands.show_payment(settings, "ccpayment", ACCOUNT, REF, as_json=False) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"payment ccpayment/{ACCOUNT}/{REF}: paid (seq 2)\n")
    timeline = text.partition("timeline (UTC):\n")[2].splitlines()
    labels = [line.split()[1] for line in timeline]
    assert labels == [
        "received",
        "transition",
        "event",
        "received",
        "received",
        "transition",
        "event",
    ]
    assert "-> duplicate" in timeline[3]
    assert "seq 2: underpaid -> paid" in timeline[5]
    assert "payment.paid" in timeline[6]

    assert await commands.show_payment(settings, "ccpayment", ACCOUNT, REF, as_json=True) == 0
    printed = orjson.loads(capsys.readouterr().out)
    async with serving(settings, pool) as base:
        _, served, _ = await get(payment_url(base), api_config.env[TOKEN_ENV])
    assert printed == served


async def test_payment_show_of_an_unknown_payment_exits_1(
    config: RunConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await commands.show_payment(config.settings, "ccpayment", ACCOUNT, "nope", as_json=True)
    assert code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"paysync: no payment ccpayment/{ACCOUNT}/nope\n"


async def run_cli(config: RunConfig, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, **config.env, "PAYSYNC_CONFIG": str(config.path)}
    proc = await asyncio.create_subprocess_exec(
        PAYSYNC, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_console_script_shows_a_payment_and_fails_on_an_unknown_one(
    config: RunConfig, pool: asyncpg.Pool
) -> None:
    await pay_in_two_parts(pool)
    code, out, _ = await run_cli(config, "payment", "show", "ccpayment", ACCOUNT, REF)
    assert code == 0
    assert out.startswith(f"payment ccpayment/{ACCOUNT}/{REF}: paid (seq 2)\n")
    code, out, _ = await run_cli(config, "payment", "show", "ccpayment", ACCOUNT, REF, "--json")
    assert (code, orjson.loads(out)["payment"]["status"]) == (0, "paid")
    code, out, err = await run_cli(config, "payment", "show", "ccpayment", ACCOUNT, "nope")
    assert (code, out) == (1, "")
    assert f"no payment ccpayment/{ACCOUNT}/nope" in err


async def test_the_ingest_role_serves_the_timeline(
    api_config: RunConfig, pool: asyncpg.Pool
) -> None:
    """The runner gives the ingest role (alone, no worker) a pool for /v1."""
    await pay_in_two_parts(pool)
    async with running(api_config, "ingest"):
        status, doc, _ = await get(payment_url(api_config.url), api_config.env[TOKEN_ENV])
    assert status == 200
    assert [t["to_status"] for t in doc["transitions"]] == ["underpaid", "paid"]
