"""The import graph of paysync's packages, read from the source (every ``import``, also the
ones inside functions and under ``TYPE_CHECKING``), and the contract it must keep.

Layers, lowest first: ``schemas`` (pure; from the kernel only ``paysync.errors``), the
kernel ``paysync`` (minus ``paysync.cli``), ``providers``, ``simulator``, the roles
``ingest``, ``worker``, ``reconciler`` and ``console`` (the operators' web pages), and on top
``paysync.cli``, the composition root. Only it imports a role, and no role imports another:
what two roles share (the search, the dead-letter tools, the API's tokens) is in the kernel.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PACKAGES = (
    "paysync",
    "schemas",
    "providers",
    "simulator",
    "ingest",
    "worker",
    "reconciler",
    "console",
)
ROLES = frozenset({"ingest", "worker", "reconciler", "console"})
CLI = "paysync.cli"
# What each part may import besides itself.
ALLOWED: Mapping[str, frozenset[str]] = {
    "schemas": frozenset({"paysync"}),  # paysync.errors only: SCHEMAS_MAY_IMPORT
    "paysync": frozenset({"schemas"}),
    "providers": frozenset({"paysync", "schemas"}),
    "simulator": frozenset({"paysync", "schemas", "providers"}),
    "ingest": frozenset({"paysync", "schemas", "providers"}),
    "worker": frozenset({"paysync", "schemas", "providers"}),
    "reconciler": frozenset({"paysync", "schemas", "providers"}),
    "console": frozenset({"paysync", "schemas", "providers"}),
    CLI: frozenset(PACKAGES) | {CLI},
}
# schemas is pure: the one thing it takes from the kernel is the error tree.
SCHEMAS_MAY_IMPORT = frozenset({"paysync.errors"})


@dataclass(frozen=True, slots=True)
class Edge:
    importer: str
    imported: str
    line: int

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} imports {self.imported}"


def modules(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Every module of ``packages`` under ``root``, by dotted name."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def edges(found: Mapping[str, Path]) -> list[Edge]:
    """Each import of one of ``found`` by another, resolved to the module it names."""
    result = []
    for name, path in found.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _targets(node, name, is_package):
                module = _resolve(target, found)
                if module is not None and module != name:
                    result.append(Edge(name, module, node.lineno))
    return result


def _targets(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = importer.split(".")
        anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
        base = ".".join([*anchor, base] if base else anchor)
    # ``from a import b`` may name a module a.b or a name defined in a.
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def _resolve(target: str, found: Mapping[str, Path]) -> str | None:
    """The deepest module of ``found`` that ``target`` names (``a.b.C`` → ``a.b``)."""
    while target:
        if target in found:
            return target
        target = target.rpartition(".")[0]
    return None


def part(module: str) -> str:
    """Which layer a module belongs to: its top package, or ``paysync.cli``."""
    if module == CLI or module.startswith(CLI + "."):
        return CLI
    return module.split(".")[0]


def violations(graph: Iterable[Edge]) -> list[str]:
    """Every import that breaks the layering, as a readable line."""
    problems = []
    for edge in graph:
        source, target = part(edge.importer), part(edge.imported)
        if source == target:
            continue
        if target in ROLES and source != CLI:
            problems.append(f"{edge}: only {CLI} imports a role")
        elif target not in ALLOWED.get(source, frozenset()):
            problems.append(f"{edge}: {source} may not import {target}")
        elif source == "schemas" and edge.imported not in SCHEMAS_MAY_IMPORT:
            problems.append(f"{edge}: schemas imports only paysync.errors from the kernel")
    # A role importing another role is caught above (a role is no role's ALLOWED).
    return sorted(set(problems))


def cycles(graph: Iterable[Edge]) -> list[list[str]]:
    """Every group of modules that import each other round a circle (Tarjan's SCCs)."""
    out: dict[str, set[str]] = {}
    for edge in graph:
        out.setdefault(edge.importer, set()).add(edge.imported)
        out.setdefault(edge.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(out[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(out):
        if node not in index:
            visit(node)
    return sorted(found)
