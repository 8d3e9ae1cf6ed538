"""The benchmark's output: a plain-text table for people, a JSON document for the record."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import platform
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from bench import e2e, ingest_report, pipeline, processes, reconciler, worker
from bench.config import Params
from bench.ingest import PairResult, Summary
from bench.rss import Recorder
from bench.targets import Target

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PACKAGES = ("aiohttp", "aio-pika", "aiormq", "asyncpg", "orjson", "structlog")


@dataclass(slots=True)
class Results:
    """What one invocation measured; a pair that did not run stays None."""

    recorder: Recorder = field(default_factory=Recorder)
    ingest: tuple[PairResult, Summary] | None = None
    processes: processes.Result | None = None
    worker: worker.Result | None = None
    e2e: e2e.Result | None = None
    pipeline: pipeline.Result | None = None
    reconciler: reconciler.Result | None = None

    def targets(self) -> list[Target]:
        found = []
        if self.ingest is not None:
            found += ingest_report.targets(self.ingest[1])
        for pair in (self.processes, self.worker, self.e2e, self.pipeline, self.reconciler):
            if pair is not None:
                found += pair.targets()
        return found + self.recorder.targets()


def environment(rabbitmq: str | None, postgres: str | None) -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "rabbitmq": rabbitmq,
        "postgres": postgres,
    }


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def document(
    *,
    params: Params,
    started: datetime,
    finished: datetime,
    env: dict[str, Any],
    results: Results,
) -> dict[str, Any]:
    pairs: dict[str, Any] = {}
    if results.ingest is not None:
        pairs["ingest_ccpayment"] = ingest_report.as_json(*results.ingest)
    if results.processes is not None:
        pairs[processes.NAME] = results.processes.as_json()
    if results.worker is not None:
        pairs[worker.NAME] = results.worker.as_json()
    if results.e2e is not None:
        pairs[e2e.NAME] = results.e2e.as_json()
    if results.pipeline is not None:
        pairs[pipeline.NAME] = results.pipeline.as_json()
    if results.reconciler is not None:
        pairs[reconciler.NAME] = results.reconciler.as_json()
    pairs["peak_rss"] = results.recorder.as_json()
    return {
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "environment": env,
        "parameters": {
            **dataclasses.asdict(params),
            "amqp_url": _redacted(params.amqp_url),
            "pg_url": _redacted(params.pg_url),
        },
        "pairs": pairs,
        "targets": [t.as_json() for t in results.targets()],
    }


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def write_json(doc: dict[str, Any], started: datetime, directory: Path = RESULTS_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    return path


def render(params: Params, results: Results) -> str:
    sections: list[list[str]] = []
    if results.ingest is not None:
        sections.append(ingest_report.render(params, *results.ingest))
    if results.processes is not None:
        sections.append(processes.render(results.processes))
    if results.worker is not None:
        sections.append(worker.render(results.worker))
    if results.e2e is not None:
        sections.append(e2e.render(results.e2e))
    if results.pipeline is not None:
        sections.append(pipeline.render(results.pipeline))
    if results.reconciler is not None:
        sections.append(reconciler.render(results.reconciler))
    sections.append(results.recorder.render())
    sections.append(["targets", *(t.line() for t in results.targets())])
    return "\n\n".join("\n".join(lines) for lines in sections)


def errors_seen(results: Results) -> list[str]:
    return [] if results.ingest is None else ingest_report.errors_seen(results.ingest[0])
