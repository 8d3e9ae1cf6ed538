"""paysync's own roles as child processes: ``paysync --config FILE worker|reconciler``.

The console script runs exactly as in production, with a benchmark configuration file:
the benchmark's database and broker prefix, its CCPayment account (and, for the
reconciler, simulated HDFC status-API accounts). Stray ``PAYSYNC_*`` variables are removed
from the child's environment so they cannot move it off the benchmark's names; only the
secrets the file references are added. On Linux the child gets a parent-death signal
(``setpriv --pdeathsig``), so an interrupted benchmark leaves no role running.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.config import ACCOUNT, APP_ID, SECRET_ENV
from bench.servers import PROJECT_ROOT, STOP_TIMEOUT_SECONDS

PAYSYNC = Path(sys.executable).with_name("paysync")
SETPRIV = shutil.which("setpriv") if sys.platform == "linux" else None
HDFC_PASSWORD_ENV = "BENCH_HDFC_PASSWORD"  # noqa: S105 - the variable's name, not a secret
HDFC_API_KEY_ENV = "BENCH_HDFC_API_KEY"
HDFC_USERNAME = "bench"
HDFC_MERCHANT_ID = "bench_merchant"


def write_config(
    path: Path,
    *,
    database_url: str,
    prefix: str,
    amqp_url: str,
    log_level: str,
    extra: str = "",
    status_url: str | None = None,
) -> Path:
    """A paysync TOML file for the benchmark's roles; ``extra`` appends tables. With
    ``status_url`` (the reconciler's), the CCPayment account's status API is the loopback
    simulator too, so no check can ever leave the machine."""
    ccpayment_status = ""
    if status_url:
        base_url = f"{status_url}/ccpayment/{ACCOUNT}"
        ccpayment_status = f'\n[accounts.ccpayment.{ACCOUNT}.status_api]\nbase_url = "{base_url}"\n'

    path.write_text(
        f"""
database_url = "{database_url}"
amqp_url = "{amqp_url}"
log_level = "{log_level}"

[broker]
name_prefix = "{prefix}"

[accounts.ccpayment.{ACCOUNT}]
app_id = "{APP_ID}"
secrets = ["env:{SECRET_ENV}"]
timestamp_tolerance_seconds = 600
{ccpayment_status}{extra}
""",
        encoding="utf-8",
    )
    return path


def hdfc_account(name: str, *, status_url: str, rate: float, concurrency: int) -> str:
    """An HDFC account table whose status API is the simulator at ``status_url``."""
    return f"""
[accounts.hdfc.{name}]
webhook_username = "{HDFC_USERNAME}"
secrets = ["env:{HDFC_PASSWORD_ENV}"]
api_key = "env:{HDFC_API_KEY_ENV}"
merchant_id = "{HDFC_MERCHANT_ID}"

[accounts.hdfc.{name}.status_api]
base_url = "{status_url.rstrip("/")}/hdfc/{name}"
rate_per_second = {rate}
concurrency = {concurrency}
timeout_seconds = 5.0
max_attempts = 2
"""


def child_env(secrets: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYSYNC_")}
    return env | dict(secrets)


@dataclass(slots=True)
class Role:
    name: str
    proc: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.proc.returncode is not None:
            raise RuntimeError(
                f"paysync {self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
            )

    async def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """SIGTERM (the role drains), wait; SIGKILL when it does not exit in time."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                return await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()


async def start(
    role: str, config: Path, secrets: Mapping[str, str], log_dir: Path, *, label: str = ""
) -> Role:
    """``paysync --config CONFIG ROLE``, its output to ``log_dir/<label or role>.log``."""
    log_path = log_dir / f"{label or role}.log"
    argv = [str(PAYSYNC), "--config", str(config), role]
    if SETPRIV is not None:
        argv = [SETPRIV, "--pdeathsig", "TERM", "--", *argv]
    with log_path.open("ab") as log_file:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=PROJECT_ROOT,
            env=child_env(secrets),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
        )
    return Role(name=role, proc=proc, log_path=log_path)
