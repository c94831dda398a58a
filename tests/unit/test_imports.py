"""Import boundaries: model and mesh code in shared/ stands alone, services import no training code and no
other service's modules, training imports no service (the one exception is named, with its reason)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

SERVICE_DIRS = {"encoder", "context", "decoder", "gateway", "reward"}
# (file, module) pairs exempt from the rules, each with its reason; none today (training/eval starts the
# embedded server as a user does: training/eval/served.py)
ALLOWED: set[tuple[str, str]] = set()


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def violations() -> list[str]:
    bad = []
    for top in ("shared", "services", "training"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            parts = rel.split("/")
            own_service = parts[1] if top == "services" and len(parts) > 2 and parts[1] in SERVICE_DIRS else None
            for name in imports(path):
                root, *rest = name.split(".")
                if (rel, name) in ALLOWED:
                    continue
                if top == "shared" and root in ("services", "training"):
                    bad.append(f"{rel} imports {name} (shared/ is below services and training)")
                if top == "services" and root == "training":
                    bad.append(f"{rel} imports {name} (services import no training code)")
                if top == "training" and root == "services":
                    bad.append(f"{rel} imports {name} (training imports no service)")
                if own_service and root == "services" and rest and rest[0] in SERVICE_DIRS and rest[0] != own_service:
                    bad.append(f"{rel} imports {name} (a service imports no other service's modules)")
    return bad


def test_no_upward_or_sideways_imports() -> None:
    assert violations() == []


def test_the_check_sees_a_violation(tmp_path, monkeypatch) -> None:
    import tests.unit.test_imports as me

    fake = tmp_path / "services" / "gateway"
    fake.mkdir(parents=True)
    (fake / "x.py").write_text("from services.context.server import ContextService\nimport training.recipe\n")
    (tmp_path / "shared").mkdir()
    (tmp_path / "training").mkdir()
    monkeypatch.setattr(me, "ROOT", tmp_path)
    assert len(violations()) == 2
