"""Names, secrets and the paysync configuration file shared by the benchmark processes."""

from __future__ import annotations

import os
import secrets
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

from paysync.amqp import Topology

APP_ID = "202401010000000000000000000000001"
ACCOUNT = "bench-shop"
SECRET_ENV = "BENCH_CCPAYMENT_SECRET"  # noqa: S105 - the variable's name, not a secret
CALLBACK_PATH = f"/webhooks/ccpayment/{ACCOUNT}"
DEFAULT_AMQP_URL = os.environ.get("PAYSYNC_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
# An admin URL: the benchmark creates (and drops) a database of its own next to it.
DEFAULT_PG_URL = os.environ.get(
    "PAYSYNC_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# Settings needs a value; the callback path of ingest never opens a database connection.
UNUSED_DATABASE_URL = "postgresql://bench@127.0.0.1:1/unused"
BASELINE_NAME = "baseline.inbound"
EVENTS_QUEUE_NAME = "bench.events"  # the benchmark's consumer of paysync.events
NAIVE_EVENTS_NAME = "naive.events"  # the naive pipeline's events exchange and queue
PAIRS = ("ingest", "processes", "worker", "e2e", "pipeline", "reconciler")


def new_prefix() -> str:
    """A broker name prefix of this run's own; everything under it is deleted at the end."""
    return f"bench.{uuid.uuid4().hex[:12]}."


def new_secret() -> str:
    return secrets.token_hex(16)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def baseline_name(prefix: str) -> str:
    """The baseline's exchange and quorum queue (one name for both)."""
    return f"{prefix}{BASELINE_NAME}"


def events_queue(prefix: str) -> str:
    """The quorum queue bound to ``paysync.events`` (``payment.#``): a fulfilment consumer."""
    return f"{prefix}{EVENTS_QUEUE_NAME}"


def naive_events(prefix: str) -> str:
    """The naive pipeline's events exchange and the quorum queue bound to it."""
    return f"{prefix}{NAIVE_EVENTS_NAME}"


def queues(prefix: str) -> list[str]:
    """Every queue the benchmark servers declare under ``prefix``."""
    t = Topology(prefix=prefix)
    return [
        t.inbound_queue,
        t.dead_queue,
        baseline_name(prefix),
        events_queue(prefix),
        naive_events(prefix),
    ]


def exchanges(prefix: str) -> list[str]:
    """Every exchange the benchmark servers declare under ``prefix``."""
    t = Topology(prefix=prefix)
    names = [t.inbound_exchange, t.dead_exchange, t.events_exchange, baseline_name(prefix)]
    return [*names, naive_events(prefix)]


def write_paysync_config(
    directory: Path, *, port: int, prefix: str, amqp_url: str, log_level: str
) -> Path:
    """A paysync TOML file with one CCPayment account whose secret is in $SECRET_ENV."""
    path = directory / "paysync.toml"
    path.write_text(
        f"""
database_url = "{UNUSED_DATABASE_URL}"
amqp_url = "{amqp_url}"
log_level = "{log_level}"

[broker]
name_prefix = "{prefix}"

[ingest]
host = "127.0.0.1"
port = {port}

[accounts.ccpayment.{ACCOUNT}]
app_id = "{APP_ID}"
secrets = ["env:{SECRET_ENV}"]
timestamp_tolerance_seconds = 600
""",
        encoding="utf-8",
    )
    return path


@dataclass(frozen=True, slots=True, kw_only=True)
class Params:
    """What one ``python -m bench`` invocation measures, and how long."""

    duration: float = 5.0  # measured window of pairs 1-3
    warmup: float = 1.5
    concurrency: int = 32
    runs: int = 3
    max_requests: int = 80_000  # hard cap per closed-loop run (warm-up included)
    half_load_duration: float = 5.0
    settle_seconds: float = 1.0  # pause after purging, before each run
    amqp_url: str = DEFAULT_AMQP_URL
    pg_url: str = DEFAULT_PG_URL
    log_level: str = "info"
    pairs: tuple[str, ...] = PAIRS
    # Pair 2: envelopes pre-filled per run (the window ends early when they run out).
    worker_messages: int = 7_000
    worker_warmup: float = 1.0
    # Pair 3: how long to wait for the last events after the sending window.
    e2e_drain_seconds: float = 15.0
    # Pair 4: the simulated status API's latency, and seconds of polling per account at
    # its bound (which sets how many payments are registered).
    reconciler_latency: float = 0.020
    reconciler_seconds: float = 3.0
    # Pair 1b: ingest processes of `paysync ingest` against one.
    ingest_processes: int = 2
    # Pipeline pair: the end-to-end p99 a sustained rate must stay under, the first rate
    # tried, and how many rates one search may try.
    pipeline_p99_ms: float = 1000.0
    pipeline_start_rate: float = 200.0
    pipeline_steps: int = 5
    quick: bool = False


QUICK = Params(
    duration=1.0,
    warmup=0.5,
    concurrency=8,
    runs=2,
    max_requests=10_000,
    half_load_duration=1.0,
    settle_seconds=0.2,
    worker_messages=1_500,
    worker_warmup=0.5,
    e2e_drain_seconds=10.0,
    reconciler_seconds=1.0,
    pipeline_steps=3,
    quick=True,
)
