"""The package's imports run one way, and no two files import each other.

Layers, low to high: utils / config / errors -> layers -> weights -> models -> data,
losses -> training -> inference -> evaluation -> app -> cli. A module may import its own layer
or lower ones; anything needed lower down moves lower down.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "talkinghead"
RANK = {
    "utils": 0, "config": 0, "errors": 0, "layers": 1, "weights": 2, "models": 3, "data": 4, "losses": 4,
    "training": 5, "inference": 6, "evaluation": 7, "app": 8, "cli": 9, "__main__": 10,
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str, known: set[str]) -> set[str]:
    """Every talkinghead module ``path`` imports (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("talkinghead")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: None if path.name == "__init__.py" else -1]
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("talkinghead"):
                found.add(name)
                found |= {f"{name}.{a.name}" for a in node.names if f"{name}.{a.name}" in known}
    return {m for m in found if m in known and m != module}


def _graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in PACKAGE.rglob("*.py")}
    return {m: _imports(p, m, set(files)) for m, p in files.items()}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_top_level_module_has_a_layer():
    tops = {_layer(m) for m in _graph()} - {"__init__"}
    assert tops <= set(RANK), f"place these in a layer: {sorted(tops - set(RANK))}"


def test_no_import_runs_back_up_the_layers():
    upward = [
        f"{m} -> {t}" for m, targets in _graph().items() for t in targets
        if _layer(m) in RANK and _layer(t) in RANK and RANK[_layer(t)] > RANK[_layer(m)]
    ]
    assert not upward, "imports running up the layers:\n" + "\n".join(sorted(upward))


def test_no_import_cycle_between_files():
    graph = _graph()
    # Tarjan's strongly connected components, iteratively
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    assert not cycles, "files importing each other: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_checks_catch_what_they_look_for(tmp_path):
    # The rank table and the resolver agree on a known upward import and a known relative one.
    assert RANK["models"] < RANK["training"]
    module = "talkinghead.models.example"
    path = tmp_path / "example.py"
    path.write_text("from talkinghead.training.trainer import Trainer\nfrom ..errors import TalkingHeadError\n")
    known = {"talkinghead.training.trainer", "talkinghead.errors"}
    assert _imports(path, module, known) == known
