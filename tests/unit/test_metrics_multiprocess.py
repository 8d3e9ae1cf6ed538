"""Counters of several processes add up on /metrics (prometheus_client's multiprocess
mode, as ingest's processes use it under one supervisor)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.metrics import sample

INCREMENT = """
import sys
from paysync.metrics import Metrics
metrics = Metrics(multiprocess_dir=sys.argv[1])
metrics.child(metrics.callbacks, "ccpayment", "shop", "accepted", "").inc(int(sys.argv[2]))
print(metrics.render().decode())
"""


def _run(directory: Path, by: int) -> str:
    done = subprocess.run(
        [sys.executable, "-c", INCREMENT, str(directory), str(by)],
        env={"PROMETHEUS_MULTIPROC_DIR": str(directory)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


def test_counters_of_two_processes_add_up(tmp_path: Path) -> None:
    first = _run(tmp_path, 3)
    assert sample(first, "paysync_callbacks_total", outcome="accepted") == 3
    # The second process renders its own 4 and the first's 3 (which has exited).
    second = _run(tmp_path, 4)
    assert sample(second, "paysync_callbacks_total", outcome="accepted") == 7
    assert len(list(tmp_path.glob("counter_*.db"))) == 2
