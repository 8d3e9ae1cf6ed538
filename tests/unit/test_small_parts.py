"""Small pure parts: named SQL queries, migration discovery, retry backoff, relay waves."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paysync.db import load_queries
from paysync.migrate import MIGRATIONS_DIR, Migration, discover
from paysync.retry import Backoff
from worker.relay import _waves
from worker.store import QUERIES_PATH as STORE_QUERIES

REPO = Path(__file__).resolve().parents[2]

# --- load_queries --------------------------------------------------------------------------


def test_load_queries_splits_named_sections(tmp_path: Path) -> None:
    path = tmp_path / "q.sql"
    path.write_text(
        "-- Header comment before any query is ignored.\n"
        "\n"
        "-- name: first_query\n"
        "SELECT 1\n"
        "\n"
        "-- name: second_query\n"
        "-- A comment that belongs to the query.\n"
        "SELECT $1\n"
        "FROM t\n"
        "--  name:   third   \n"
        "SELECT 3;\n",
        encoding="utf-8",
    )
    queries = load_queries(path)
    assert list(queries) == ["first_query", "second_query", "third"]
    assert queries["first_query"] == "SELECT 1"
    assert queries["second_query"] == "-- A comment that belongs to the query.\nSELECT $1\nFROM t"
    assert queries["third"] == "SELECT 3;"


def test_load_queries_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "q.sql"
    path.write_text("-- nothing here\n", encoding="utf-8")
    assert dict(load_queries(path)) == {}


def test_load_queries_duplicate_name(tmp_path: Path) -> None:
    path = tmp_path / "q.sql"
    path.write_text("-- name: a\nSELECT 1\n-- name: b\nSELECT 2\n-- name: a\nSELECT 3\n")
    with pytest.raises(ValueError, match="defined twice"):
        load_queries(path)


def test_name_marker_must_be_alone_on_its_line(tmp_path: Path) -> None:
    path = tmp_path / "q.sql"
    path.write_text("-- name: a\nSELECT 1 -- name: b\n", encoding="utf-8")
    assert dict(load_queries(path)) == {"a": "SELECT 1 -- name: b"}


def _names_used(source: Path) -> set[str]:
    text = source.read_text(encoding="utf-8")
    return set(re.findall(r'(?:self\._q|queries)\["([a-z_]+)"\]', text))


def test_worker_queries_hold_every_name_the_worker_uses() -> None:
    assert REPO / "worker" / "queries.sql" == STORE_QUERIES
    queries = load_queries(STORE_QUERIES)
    used = set().union(
        *(_names_used(REPO / "worker" / f) for f in ("store.py", "ledger.py", "relay.py"))
    )
    assert {
        "lock_payment",
        "insert_inbox",
        "update_payment",
        "insert_transition",
        "insert_outbox",
        "notify_outbox",
        "relay_try_lock",
        "relay_batch",
        "relay_mark_published",
    } <= used
    assert used <= set(queries)
    assert all(sql for sql in queries.values())


def test_worker_queries_use_only_positional_parameters() -> None:
    for name, sql in load_queries(STORE_QUERIES).items():
        assert "%s" not in sql, name
        assert "{" not in sql, name


# --- migrate.discover ----------------------------------------------------------------------


def _write(directory: Path, *names: str) -> None:
    directory.mkdir(exist_ok=True)
    for name in names:
        (directory / name).write_text(f"-- {name}\nSELECT 1;\n", encoding="utf-8")


def test_discover_orders_by_version(tmp_path: Path) -> None:
    _write(tmp_path, "0002_add_index.sql", "0001_initial.sql", "0003_more.sql")
    found = discover(tmp_path)
    assert [(m.version, m.name) for m in found] == [(1, "initial"), (2, "add_index"), (3, "more")]
    assert found[0] == Migration(1, "initial", "-- 0001_initial.sql\nSELECT 1;\n")


def test_discover_empty_dir(tmp_path: Path) -> None:
    assert discover(tmp_path) == []


@pytest.mark.parametrize(
    "names",
    [
        ("0001_a.sql", "0003_c.sql"),
        ("0002_b.sql",),
        ("0001_a.sql", "0001_b.sql"),
        ("0000_zero.sql", "0001_a.sql"),
    ],
    ids=["gap", "no-first", "duplicate", "zero"],
)
def test_discover_rejects_bad_sequences(tmp_path: Path, names: tuple[str, ...]) -> None:
    _write(tmp_path, *names)
    with pytest.raises(ValueError, match="without gaps"):
        discover(tmp_path)


@pytest.mark.parametrize(
    "bad",
    ["1_a.sql", "0002-b.sql", "0002_B.sql", "0002_b.SQL", "0002_b.sql.bak", "README.md", "0002_"],
)
def test_discover_rejects_bad_names(tmp_path: Path, bad: str) -> None:
    _write(tmp_path, "0001_a.sql", bad)
    with pytest.raises(ValueError, match=r"NNNN_name\.sql"):
        discover(tmp_path)


def test_discover_real_migrations() -> None:
    found = discover()
    assert MIGRATIONS_DIR == REPO / "paysync" / "sql" / "migrations"
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert found[0].name == "initial"
    assert all(m.sql.strip() for m in found)
    assert "CREATE TABLE" in found[0].sql.upper()


# --- retry.Backoff -------------------------------------------------------------------------


def test_ceiling_doubles_and_caps() -> None:
    backoff = Backoff(initial=0.2, maximum=10.0)
    ceilings = [backoff.ceiling(n) for n in range(1, 9)]
    assert ceilings == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0])


def test_ceiling_before_first_attempt_is_initial() -> None:
    backoff = Backoff(initial=0.5, maximum=10.0)
    assert backoff.ceiling(0) == backoff.ceiling(1) == 0.5


def test_ceiling_with_other_multiplier() -> None:
    backoff = Backoff(initial=1.0, maximum=100.0, multiplier=3.0)
    assert [backoff.ceiling(n) for n in (1, 2, 3, 4, 5, 6)] == [1, 3, 9, 27, 81, 100]


@pytest.mark.parametrize("attempt", [1_025, 2_000, 1_000_000])
def test_ceiling_stays_capped_after_very_many_attempts(attempt: int) -> None:
    # The worker's apply loop and the relay count attempts without limit while a
    # dependency is down; the wait must stay at the cap, not overflow.
    backoff = Backoff(initial=0.2, maximum=10.0)
    assert backoff.ceiling(attempt) == 10.0
    assert 5.0 <= backoff.delay(attempt, random.Random(1)) <= 10.0


def test_delay_within_half_ceiling_and_ceiling() -> None:
    backoff = Backoff(initial=0.2, maximum=10.0)
    rng = random.Random(1234)
    for attempt in range(1, 20):
        top = backoff.ceiling(attempt)
        for _ in range(50):
            delay = backoff.delay(attempt, rng)
            assert top / 2 <= delay <= top


def test_delay_is_spread_not_constant() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0)
    rng = random.Random(7)
    delays = {backoff.delay(4, rng) for _ in range(20)}
    assert len(delays) > 1


def test_delay_is_reproducible_with_seeded_rng() -> None:
    backoff = Backoff(initial=0.2, maximum=10.0)
    first = [backoff.delay(n, random.Random(42)) for n in range(1, 10)]
    second = [backoff.delay(n, random.Random(42)) for n in range(1, 10)]
    assert first == second


@given(
    initial=st.floats(min_value=0.001, max_value=10),
    maximum=st.floats(min_value=0.001, max_value=1000),
    attempt=st.integers(min_value=1, max_value=60),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_delay_property(initial: float, maximum: float, attempt: int, seed: int) -> None:
    backoff = Backoff(initial=initial, maximum=maximum)
    top = backoff.ceiling(attempt)
    assert top <= maximum
    assert backoff.ceiling(attempt + 1) >= top
    delay = backoff.delay(attempt, random.Random(seed))
    assert top / 2 <= delay <= top
    assert delay > 0


# --- relay._waves --------------------------------------------------------------------------


def rows(*payment_ids: int) -> list[dict[str, Any]]:
    return [{"id": i, "payment_id": p} for i, p in enumerate(payment_ids, start=1)]


def ids(waves: list[list[Any]]) -> list[list[int]]:
    return [[row["id"] for row in wave] for wave in waves]


def test_waves_empty() -> None:
    assert _waves([]) == []


def test_waves_distinct_payments_are_one_wave() -> None:
    assert ids(_waves(rows(1, 2, 3))) == [[1, 2, 3]]  # type: ignore[arg-type]


def test_waves_split_same_payment() -> None:
    waves = _waves(rows(7, 8, 7, 7, 9, 8))  # type: ignore[arg-type]
    assert ids(waves) == [[1, 2, 5], [3, 6], [4]]


@given(st.lists(st.integers(min_value=1, max_value=5), max_size=40))
def test_waves_property(payment_ids: list[int]) -> None:
    given_rows = rows(*payment_ids)
    waves = _waves(given_rows)  # type: ignore[arg-type]
    # Every row exactly once.
    flat = [row for wave in waves for row in wave]
    assert sorted(r["id"] for r in flat) == [r["id"] for r in given_rows]
    # No empty waves; at most one row per payment in each wave; id order inside a wave.
    for wave in waves:
        assert wave
        pids = [r["payment_id"] for r in wave]
        assert len(pids) == len(set(pids))
        assert [r["id"] for r in wave] == sorted(r["id"] for r in wave)
    # Within one payment, rows leave in id order across successive waves.
    for pid in set(payment_ids):
        order = [r["id"] for wave in waves for r in wave if r["payment_id"] == pid]
        assert order == [r["id"] for r in given_rows if r["payment_id"] == pid]
    # As few waves as possible: the busiest payment's row count.
    expected = max((payment_ids.count(p) for p in set(payment_ids)), default=0)
    assert len(waves) == expected
