"""What a process tells its orchestrator: is each role ready, is each role alive.

Every role of a process registers one readiness check (the worker: it has a consumer on
``paysync.inbound``; the relay: it can publish events; ingest: its publishes are
confirmed; the reconciler: it has a broker link) and its main task. The process is ready
only when every check passes, and alive only while no main task has ended on its own:
a role whose task died makes ``/healthz`` fail, so the orchestrator restarts a process
that runs but does nothing.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Check = Callable[[], bool | Awaitable[bool]]


@dataclass(slots=True)
class Health:
    _checks: dict[str, Check] = field(default_factory=dict)
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    stopping: bool = False

    def add_check(self, name: str, check: Check) -> None:
        self._checks[name] = check

    def watch(self, name: str, task: asyncio.Task[None]) -> None:
        self._tasks[name] = task

    async def readiness(self) -> dict[str, bool]:
        """Each registered check's answer (a check that raises counts as not ready)."""
        answers: dict[str, bool] = {}
        for name, check in self._checks.items():
            try:
                answer = check()
                answers[name] = bool(await answer if inspect.isawaitable(answer) else answer)
            except Exception:
                answers[name] = False
        return answers

    def dead(self) -> list[str]:
        """Roles whose main task has ended although the process is not stopping."""
        if self.stopping:
            return []
        return sorted(name for name, task in self._tasks.items() if task.done())
