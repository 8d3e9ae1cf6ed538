"""What every deploy check shares: paths, the report, YAML that refuses duplicate keys, and
the configuration the Kubernetes manifests ship (validated by paysync's own settings)."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from paysync.settings import Settings, load_settings
from providers import account_models

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
K8S_CONFIG = K8S / "base" / "paysync.toml"
KUBERNETES_VERSION = "1.30.0"
RUNBOOK = "README.md#runbook-when-something-fails"
# Valid as hex, as base64 and as text: every provider's secret format accepts it.
DUMMY_SECRET = "00" * 32


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def ok(self, what: str) -> None:
        print(f"ok    {what}")

    def fail(self, what: str, problems: list[str]) -> None:
        print(f"FAIL  {what}")
        for problem in problems:
            print(f"        {problem}")
        self.failures.append(what)

    def check(self, what: str, problems: list[str]) -> None:
        if problems:
            self.fail(what, problems)
        else:
            self.ok(what)

    def skip(self, what: str, why: str) -> None:
        print(f"skip  {what}: {why}")
        self.skipped.append(what)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; Kubernetes tools may not."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *anchor` keys may be overridden by the mapping's own keys
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node))


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def load_yaml_documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.load_all(text, Loader=_UniqueKeyLoader) if d]


def load_yaml(path: Path) -> list[dict[str, Any]]:
    return load_yaml_documents(path.read_text(encoding="utf-8"))


def env_refs(text: str) -> set[str]:
    """The NAME of every ``env:NAME`` secret reference in a paysync.toml."""
    return set(re.findall(r'"env:([A-Za-z_][A-Za-z0-9_]*)"', text))


def k8s_settings() -> Settings:
    """deploy/k8s/base/paysync.toml as every pod reads it (raises ConfigError)."""
    names = env_refs(K8S_CONFIG.read_text(encoding="utf-8"))
    env = {name: DUMMY_SECRET for name in names}
    return load_settings(account_models(), path=K8S_CONFIG, env=env)


def tool(name: str) -> str | None:
    """A command from the venv, PATH, or .run/tools/bin (deploy/bootstrap.sh tools)."""
    for candidate in (ROOT / ".venv" / "bin" / name, ROOT / ".run" / "tools" / "bin" / name):
        if candidate.exists():
            return str(candidate)
    return shutil.which(name)
