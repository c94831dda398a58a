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


def module_graph(root: Path) -> dict[str, set[str]]:
    """Our modules (dotted names) -> the modules of ours each imports, at any level of the file (a function's
    import and a TYPE_CHECKING one count: both tie the two modules together for a reader)."""
    files = {".".join(p.relative_to(root).with_suffix("").parts): p for top in ("shared", "services", "training")
             for p in (root / top).rglob("*.py")}
    ours = {name.removesuffix(".__init__") for name in files}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                named = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from a.b import c` names the module a.b.c if there is one, else a.b
                named = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for module in named:
                while module and module not in ours:
                    module = module.rpartition(".")[0]
                if module:
                    found.add(module)
        graph[name.removesuffix(".__init__")] = found - {name.removesuffix(".__init__")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import circle once, as the modules on it (Tarjan's strongly connected components of two or more)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles() -> None:
    assert cycles(module_graph(ROOT)) == []


def test_the_circle_check_sees_a_circle(tmp_path: Path) -> None:
    (tmp_path / "services").mkdir()
    (tmp_path / "services" / "a.py").write_text("from services.b import x\n")
    (tmp_path / "services" / "b.py").write_text("def f():\n    from services import a\n")
    (tmp_path / "shared").mkdir()
    (tmp_path / "training").mkdir()
    assert cycles(module_graph(tmp_path)) == [["services.a", "services.b"]]


def test_every_decoder_family_has_one_decoding_strategy() -> None:
    from shared.model.asr import DECODERS
    from shared.strategies import DECODING_STRATEGIES

    assert set(DECODING_STRATEGIES) == set(DECODERS)
    recognition = (ROOT / "shared" / "recognition.py").read_text()
    assert '"whisper"' not in recognition and "decoder_type ==" not in recognition, "AsrCore names no family"
