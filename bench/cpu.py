"""CPU time of the processes sharing the machine: the server, the broker, the load generator.

Read from Linux ``/proc``; elsewhere (or for a remote broker) the figure is ``None``. On a
small machine these shares tell whether a side was CPU-bound or waited for the broker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

CpuReader = Callable[[], float | None]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
BROKER_COMMAND = "beam.smp"  # the Erlang VM running RabbitMQ
POSTGRES_COMMAND = "postgres"  # the postmaster and every backend


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` so far, or None when unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def process_tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of ``pid`` and of its live children (``paysync ingest`` supervising
    several ingest processes); just ``pid``'s when it has none."""
    own = process_cpu_seconds(pid)
    if own is None:
        return None
    return own + sum(process_cpu_seconds(child) or 0.0 for child in children_of(pid))


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` (zombies, already exited, excluded)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="ascii").rsplit(")", 1)[1].split()
        except (OSError, UnicodeDecodeError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return sorted(found)


def pids_of(command: str) -> list[int]:
    """Every local process whose command name is ``command``."""
    found = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text(encoding="ascii").strip() == command:
                found.append(int(comm.parent.name))
        except (OSError, UnicodeDecodeError):
            continue
    return found


def find_broker_pid() -> int | None:
    """The local RabbitMQ VM's pid, if exactly one runs here."""
    found = pids_of(BROKER_COMMAND)
    return found[0] if len(found) == 1 else None


def postgres_cpu_seconds() -> float | None:
    """CPU seconds of every local Postgres process alive now (None: no local Postgres).
    A backend that exits between two readings takes its share with it; the benchmark's
    connections stay open across each window, so deltas over a window hold."""
    seconds = [process_cpu_seconds(pid) for pid in pids_of(POSTGRES_COMMAND)]
    present = [s for s in seconds if s is not None]
    return sum(present) if present else None


def readers(server_pid: int, broker_pid: int | None) -> Mapping[str, CpuReader]:
    def broker() -> float | None:
        return None if broker_pid is None else process_cpu_seconds(broker_pid)

    return {
        "server": lambda: process_tree_cpu_seconds(server_pid),
        "broker": broker,
        "loadgen": time.process_time,
    }


def _reader(pid: int) -> CpuReader:
    return lambda: process_tree_cpu_seconds(pid)


def process_readers(pids: Mapping[str, int], broker_pid: int | None) -> dict[str, CpuReader]:
    """Named processes (``{"worker": pid}``), plus the broker and every Postgres process."""
    found: dict[str, CpuReader] = {name: _reader(pid) for name, pid in pids.items()}
    if broker_pid is not None:
        found["broker"] = _reader(broker_pid)
    found["postgres"] = postgres_cpu_seconds
    return found
