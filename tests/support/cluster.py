"""A 3-node RabbitMQ cluster and a Postgres server of the test's own, on non-default ports,
for ``make faults-cluster``. They never touch the machine's services on 5672/5432: own
node names, ports, data directories and Erlang cookie; everything is removed afterwards.

The fault injectors here kill, pause and restart *these* servers only; paysync's processes
are never restarted by them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import orjson

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
PG_BIN = (
    Path("/usr/lib/postgresql")
    / (
        sorted(os.listdir("/usr/lib/postgresql"))[-1]
        if Path("/usr/lib/postgresql").exists()
        else ""
    )
    / "bin"
)


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        # As a server binds: connections lingering in TIME_WAIT do not make it taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


async def port_closed(port: int) -> bool:
    return not await port_open(port)


async def _until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.2)


async def _run(*argv: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(120):  # a CLI call to a paused node would wait for ever
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{' '.join(argv)} did not finish within 120 s") from None
    text = out.decode(errors="replace")
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}:\n{text}")
    return text


@dataclass(frozen=True, slots=True)
class Node:
    name: str  # Erlang node name, e.g. pfc1@localhost
    amqp_port: int
    dist_port: int
    directory: Path

    @property
    def pid_file(self) -> Path:
        return self.directory / "pid"

    def os_pid(self) -> int:
        return int(self.pid_file.read_text().strip())


class RabbitCluster:
    """Three RabbitMQ nodes clustered on 127.0.0.1, AMQP ports ``base`` .. ``base + 2``."""

    def __init__(self, directory: Path, base_port: int = 35672) -> None:
        self.directory = directory
        self.home = directory / "home"
        tag = uuid.uuid4().hex[:6]
        self.nodes = [
            Node(
                f"pfc{i}{tag}@localhost", base_port + i, base_port + 10_000 + i, directory / f"n{i}"
            )
            for i in range(3)
        ]

    @property
    def urls(self) -> list[str]:
        return [f"amqp://guest:guest@127.0.0.1:{n.amqp_port}/" for n in self.nodes]

    def node_on(self, port: int) -> Node:
        return next(n for n in self.nodes if n.amqp_port == port)

    def _env(self, node: Node | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env["HOME"] = str(self.home)
        if node is not None:
            env.update(
                RABBITMQ_NODENAME=node.name,
                RABBITMQ_DIST_PORT=str(node.dist_port),
                RABBITMQ_MNESIA_BASE=str(node.directory / "mnesia"),
                RABBITMQ_LOG_BASE=str(node.directory / "log"),
                RABBITMQ_CONFIG_FILE=str(node.directory / "rabbitmq.conf"),
                RABBITMQ_ENABLED_PLUGINS_FILE=str(self.directory / "enabled_plugins"),
                RABBITMQ_PID_FILE=str(node.pid_file),
            )
        return env

    async def ctl(self, node: Node, *args: str, check: bool = True) -> str:
        return await _run(
            str(RABBIT_BIN / "rabbitmqctl"),
            "-q",
            "-n",
            node.name,
            *args,
            env=self._env(),
            check=check,
        )

    async def start(self) -> None:
        for node in self.nodes:
            for port in (node.amqp_port, node.dist_port):
                if not port_free(port):
                    raise AssertionError(f"port {port} is taken: the cluster test needs it")
        self.home.mkdir(parents=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(uuid.uuid4().hex.upper())
        cookie.chmod(0o400)
        (self.directory / "enabled_plugins").write_text("[].\n")
        peers = "".join(
            f"cluster_formation.classic_config.nodes.{i} = {n.name}\n"
            for i, n in enumerate(self.nodes, 1)
        )
        for node in self.nodes:
            node.directory.mkdir()
            (node.directory / "rabbitmq.conf").write_text(
                f"listeners.tcp.1 = 127.0.0.1:{node.amqp_port}\n"
                # The first node boots alone and forms the cluster; the others find it
                # and join as they boot (stop_app/join_cluster/start_app trips over the
                # listener on 3.10).
                "cluster_formation.peer_discovery_backend = classic_config\n"
                f"{peers}"
                "loopback_users = none\n"
                # Notice a paused peer fast (the default tick is 60 s).
                "net_ticktime = 10\n"
            )
        for node in self.nodes:
            await self.boot(node)
        await self.wait_members(3)

    async def boot(self, node: Node, attempts: int = 3) -> None:
        """Start (or restart) one node and wait until it serves AMQP. On a loaded machine a
        joining node sometimes gives up on its first boot (it times out finding its peers):
        it is started again, up to ``attempts`` times, then the error names its log."""
        for attempt in range(1, attempts + 1):
            try:
                await self._boot_once(node)
                return
            except AssertionError:
                if attempt == attempts:
                    raise AssertionError(
                        f"{node.name} did not start:\n{self.log_tail(node)}"
                    ) from None
                with contextlib.suppress(OSError, ValueError):
                    os.kill(node.os_pid(), signal.SIGKILL)
                await _until(partial(port_closed, node.amqp_port), 30, f"{node.name} gone")

    def log_tail(self, node: Node, lines: int = 30) -> str:
        log = node.directory / "log" / f"{node.name}.log"
        text = log.read_text(errors="replace") if log.exists() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    async def _boot_once(self, node: Node) -> None:
        await _run(str(RABBIT_BIN / "rabbitmq-server"), "-detached", env=self._env(node))
        await _until(lambda: port_open(node.amqp_port), 120, f"{node.name} listening")
        await self.ctl(node, "await_startup", "--timeout", "120")
        # A node that was paused past the tick rejoins by pausing itself while in the
        # minority. Set once running: from the config file, the first node, booting alone,
        # would count as a minority and never start.
        await self.ctl(
            node, "eval", "application:set_env(rabbit, cluster_partition_handling, pause_minority)."
        )

    async def wait_members(self, running: int) -> None:
        async def counted() -> bool:
            text = await self.ctl(
                self.nodes[0], "cluster_status", "--formatter", "json", check=False
            )
            try:
                return len(orjson.loads(text)["running_nodes"]) == running
            except (orjson.JSONDecodeError, KeyError):
                return False

        await _until(counted, 120, f"{running} running cluster nodes")

    async def kill(self, node: Node) -> None:
        os.kill(node.os_pid(), signal.SIGKILL)
        await _until(lambda: port_closed(node.amqp_port), 30, f"{node.name} gone")

    def pause(self, node: Node) -> None:
        os.kill(node.os_pid(), signal.SIGSTOP)

    def resume(self, node: Node) -> None:
        os.kill(node.os_pid(), signal.SIGCONT)

    async def up(self) -> list[Node]:
        return [n for n in self.nodes if await port_open(n.amqp_port)]

    async def queue_info(self, queue: str) -> dict[str, object]:
        """``messages`` (ready + unacked) and ``leader`` of a queue, asked of a live node."""
        for node in await self.up():
            text = await self.ctl(
                node,
                "list_queues",
                "name",
                "messages",
                "leader",
                "--formatter",
                "json",
                check=False,
            )
            with contextlib.suppress(orjson.JSONDecodeError):
                for row in orjson.loads(text):
                    if row["name"] == queue:
                        return dict(row)
        raise AssertionError(f"no live node knows queue {queue}")

    async def stop(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(OSError, ValueError):
                os.kill(node.os_pid(), signal.SIGCONT)
                os.kill(node.os_pid(), signal.SIGKILL)
        for node in self.nodes:
            for port in (node.amqp_port, node.dist_port):
                with contextlib.suppress(AssertionError):
                    await _until(partial(port_closed, port), 30, f"port {port} closed")
        shutil.rmtree(self.directory, ignore_errors=True)


class PostgresServer:
    """A Postgres server in a directory of its own (initdb), run as the postgres user."""

    def __init__(self, directory: Path, port: int = 35432) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = port

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def _as_postgres(self, *argv: str, check: bool = True) -> str:
        return await _run("runuser", "-u", "postgres", "--", *argv, check=check)

    async def start(self) -> None:
        if not port_free(self.port):
            raise AssertionError(f"port {self.port} is taken: the cluster test needs it")
        self.directory.mkdir(parents=True)
        shutil.chown(self.directory, "postgres", "postgres")
        await self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust"
        )
        await self.boot()

    async def boot(self) -> None:
        """Start the server; after a killed postmaster, retry until its orphaned backends
        have gone (Postgres refuses to start while they hold the shared memory)."""

        async def started() -> bool:
            out = await self._as_postgres(
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-w",
                "-t",
                "30",
                "-l",
                str(self.directory / "postgres.log"),
                "-o",
                f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1",
                "start",
                check=False,
            )
            return "server started" in out

        await _until(started, 90, "postgres started")

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().splitlines()[0])

    async def kill_postmaster(self) -> None:
        os.kill(self.postmaster_pid(), signal.SIGKILL)
        await _until(lambda: port_closed(self.port), 30, "postgres gone")

    async def stop(self) -> None:
        await self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop", check=False
        )
        with contextlib.suppress(AssertionError):
            await _until(partial(port_closed, self.port), 30, "postgres stopped")
        shutil.rmtree(self.directory, ignore_errors=True)


@asynccontextmanager
async def servers() -> AsyncIterator[tuple[RabbitCluster, PostgresServer]]:
    """Both, in a directory the postgres user can reach (pytest's tmp_path is root's)."""
    base = Path(f"/tmp/paysync-faults-cluster-{uuid.uuid4().hex[:8]}")  # noqa: S108
    os.mkdir(base, mode=0o755)
    rabbit = RabbitCluster(base / "rabbit")
    postgres = PostgresServer(base / "postgres")
    try:
        await asyncio.gather(rabbit.start(), postgres.start())
        yield rabbit, postgres
    finally:
        await rabbit.stop()
        await postgres.stop()
        shutil.rmtree(base, ignore_errors=True)
