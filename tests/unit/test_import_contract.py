"""The import contract (tests/support/imports.py): no circles; only ``paysync.cli`` imports a
role; no role imports another; ``schemas`` takes only ``paysync.errors`` from the kernel;
the kernel imports no provider, role or simulator. The checker is shown to catch each
breach on a small tree of its own, so a pass means something."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.imports import cycles, edges, modules, violations

REPO = Path(__file__).parents[2]


def graph(root: Path) -> list[str]:
    return violations(edges(modules(root)))


def test_paysync_keeps_the_contract() -> None:
    found = edges(modules(REPO))
    assert len(found) > 300, "the graph was not read"
    assert violations(found) == []
    assert cycles(found) == []


def test_the_composition_root_is_the_only_importer_of_roles_and_does_import_them() -> None:
    found = edges(modules(REPO))
    roles = ("ingest", "worker", "reconciler", "console")
    importers = {e.importer for e in found if e.imported.split(".")[0] in roles}
    outside = {m for m in importers if m.split(".")[0] not in roles}
    assert outside, "nothing imports a role: the graph was not read"
    assert all(m.startswith("paysync.cli") for m in outside), sorted(outside)
    # Every role is started by the composition root.
    started = {e.imported.split(".")[0] for e in found if e.importer.startswith("paysync.cli")}
    assert set(roles) <= started


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"worker/a.py": "from ingest import b\n", "ingest/b.py": ""},
            "worker.a:1 imports ingest.b: only paysync.cli imports a role",
        ),
        (
            {"paysync/runner.py": "def f():\n    import worker.c\n", "worker/c.py": ""},
            "paysync.runner:2 imports worker.c: only paysync.cli imports a role",
        ),
        (
            {"console/views.py": "from worker import dead\n", "worker/dead.py": ""},
            "console.views:1 imports worker.dead: only paysync.cli imports a role",
        ),
        (
            {"paysync/x.py": "from providers.base import P\n", "providers/base.py": ""},
            "paysync.x:1 imports providers.base: paysync may not import providers",
        ),
        (
            {"schemas/e.py": "from paysync.db import Pool\n", "paysync/db.py": ""},
            "schemas.e:1 imports paysync.db: schemas imports only paysync.errors from the kernel",
        ),
        (
            {"simulator/s.py": "from reconciler import r\n", "reconciler/r.py": ""},
            "simulator.s:1 imports reconciler.r: only paysync.cli imports a role",
        ),
        (
            {"providers/p/a.py": "from . import b\nfrom ..q import c\n", "providers/p/b.py": ""}
            | {"providers/q.py": "from worker import w\n", "worker/w.py": ""},
            "providers.q:1 imports worker.w: only paysync.cli imports a role",
        ),
    ],
)
def test_the_checker_names_each_breach(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    assert graph(write(tmp_path, files)) == [expected]


def test_the_checker_allows_what_the_contract_allows(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "schemas/e.py": "from paysync.errors import Permanent\n",
            "paysync/errors.py": "",
            "paysync/cli/roles.py": "import ingest.app\nfrom worker import store\n",
            "ingest/app.py": "from providers.base import P\n",
            "worker/store.py": "",
            "providers/base.py": "from schemas import e\n",
        },
    )
    assert graph(root) == []


def test_the_checker_finds_circles_through_lazy_imports(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "providers/p.py": "from providers import p_status\n",
            "providers/p_status.py": "def f():\n    from providers.p import X\n",
            "providers/q.py": "import providers.p\n",
        },
    )
    assert cycles(edges(modules(root))) == [["providers.p", "providers.p_status"]]
