"""Expected failures of the installed ``paysync`` script against real services, each one
line on stderr and an exit code, never a traceback: a database that is not migrated, or
does not exist, Postgres or RabbitMQ down, ingest not answering."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.config import RunConfig, free_port, write_config
from tests.support.process import run_paysync
from tests.support.services import (
    BrokerNames,
    create_database,
    database_url,
    drop_database,
    unique,
)

pytestmark = pytest.mark.integration


async def run(config: RunConfig, *args: str) -> tuple[int, str, str]:
    return await run_paysync(config, *args, timeout=50)


def one_line(err: str) -> str:
    """The stderr line meant for a person (log lines are JSON); no traceback anywhere."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if not line.startswith("{")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
async def unmigrated() -> AsyncIterator[str]:
    name = unique("paysync_bare")
    await create_database(name)
    yield database_url(name)
    await drop_database(name)


async def test_a_database_that_is_not_migrated(
    tmp_path: Path, unmigrated: str, names: BrokerNames
) -> None:
    config = write_config(tmp_path, database_url=unmigrated, prefix=names.prefix)
    for args in (
        ["payment", "show", "hdfc", "shop", "order-1"],
        ["payment", "refold", "--dry-run"],
        ["reconcile", "--provider", "hdfc", "--dry-run"],
    ):
        code, out, err = await run(config, *args)
        assert (code, out) == (1, ""), args
        line = one_line(err)
        assert line.startswith("paysync: the database is not migrated ("), line
        assert line.endswith("): run paysync migrate"), line


async def test_a_database_that_does_not_exist(tmp_path: Path, names: BrokerNames) -> None:
    missing = database_url(unique("paysync_missing"))
    config = write_config(tmp_path, database_url=missing, prefix=names.prefix)
    code, _, err = await run(config, "payment", "show", "hdfc", "shop", "order-1")
    assert code == 1
    assert one_line(err).endswith("does not exist: run paysync migrate (it creates the database)")


async def test_postgres_down(tmp_path: Path, names: BrokerNames) -> None:
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/paysync"
    config = write_config(tmp_path, database_url=down, prefix=names.prefix)
    code, _, err = await run(config, "payment", "show", "hdfc", "shop", "order-1")
    assert code == 1
    assert one_line(err).startswith("paysync: database unavailable: ")


async def test_rabbitmq_down(tmp_path: Path, db_url: str) -> None:
    down = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    config = write_config(tmp_path, database_url=db_url, prefix="t.down.", amqp_url=down)
    code, _, err = await run(config, "events", "watch", "--count", "1")
    assert code == 1
    line = one_line(err)
    assert line.startswith("paysync: RabbitMQ not reachable ("), line
    assert line.endswith("): check amqp_url / PAYSYNC_AMQP_URL"), line


async def test_ingest_down(config: RunConfig) -> None:
    code, out, err = await run(config, "simulate", "hdfc")
    assert (code, out) == (1, "")
    assert one_line(err) == (
        f"paysync: ingest not reachable at 127.0.0.1:{config.port} (Connection refused):"
        " is paysync running? (make run, or paysync ingest)"
    )
