"""``make lint-deploy``: validate everything under deploy/ (run as ``python deploy/checks``).

Prints one line per check (ok / FAIL / skip with the reason) and exits 1 when any failed.
What cannot be checked here is said at the end, every run.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import alerting
import broker
import files
import kube
from common import K8S, K8S_CONFIG, Report, env_refs, k8s_settings

from paysync.errors import ConfigError

NOT_CHECKED = (
    "KEDA's runtime parsing of trigger metadata (the CRD types it as a free map: only the "
    "documented rabbitmq keys are checked here)",
    "that the cluster runs Kubernetes 1.30 with KEDA >= 2.12 and a NetworkPolicy-enforcing "
    "CNI; the namespaces and labels the NetworkPolicies assume (rabbitmq, postgres, "
    "monitoring, ingress-nginx, kube-system)",
    "the RabbitMQ definitions on a live 3.13 broker (target-group-size is 3.13+; permissions "
    "are proved on a live broker by deploy/rabbitmq/check_permissions.py, not run here)",
    "the Grafana dashboard in Grafana itself (its JSON and every query are checked)",
)


def main() -> int:
    report = Report()
    try:
        settings = k8s_settings()
    except ConfigError as exc:
        report.fail(f"{K8S_CONFIG.relative_to(K8S.parents[1])}: paysync settings", [str(exc)])
        return 1
    report.ok("k8s paysync.toml: valid for paysync's settings model, secrets by reference")
    example = (K8S / "secret.example.yaml").read_text(encoding="utf-8")
    missing = sorted(
        n for n in env_refs(K8S_CONFIG.read_text(encoding="utf-8")) if n not in example
    )
    report.check(
        "k8s paysync.toml: every env:NAME is documented in secret.example.yaml",
        [f"{n} missing" for n in missing],
    )
    sections: list[tuple[str, Callable[[], None]]] = [
        ("deploy/k8s", lambda: kube.check(report, settings)),
        ("deploy/rabbitmq", lambda: broker.check(report, settings)),
        ("deploy/prometheus, deploy/grafana", lambda: alerting.check(report)),
        ("deploy/Dockerfile, deploy/compose.yaml", lambda: files.check(report)),
    ]
    for where, run in sections:
        try:
            run()
        except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
            report.fail(f"{where}: unreadable", [f"{type(exc).__name__}: {exc}"])
        except subprocess.CalledProcessError as exc:
            report.fail(f"{where}: {exc.cmd[0]} failed", str(exc.stderr).splitlines())
    print("not checked here:")
    for item in NOT_CHECKED:
        print(f"  - {item}")
    if report.failures:
        print(f"{len(report.failures)} deploy check(s) failed")
        return 1
    print(f"deploy checks passed ({len(report.skipped)} skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
