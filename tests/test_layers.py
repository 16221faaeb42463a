"""The package's layers: data flows one way, no module imports one above its layer, no cycles.

Every ``import`` counts, including those inside functions (lazy imports are still
dependencies); ``if TYPE_CHECKING:`` imports count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parent.parent / "recausal"

# Lowest first. A module may import its own layer and those below it.
LAYERS: list[tuple[str, ...]] = [
    ("recausal.errors", "recausal._checks", "recausal._version", "recausal._io",
     "recausal._compat", "recausal._lazy"),
    ("recausal.causal", "recausal.data"),
    ("recausal.models",),
    ("recausal.discovery",),
    ("recausal.explain",),
    ("recausal.report", "recausal.testing"),
    ("recausal.usecases",),
    ("recausal.evaluate",),
    ("recausal.cli", "recausal.evaluate.cli", "recausal.service"),
]  # fmt: skip


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    deps: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                submodules = [f"{base}.{a.name}" for a in node.names]
                targets = [t for t in submodules if t in modules] or [base]
            else:
                continue
            deps[name].update(t for t in targets if t in modules and t != name)
    return deps


def _layer(module: str) -> int:
    best, rank = "", -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, rank = prefix, index
    assert rank >= 0, f"{module} belongs to no layer: add it to LAYERS"
    return rank


def test_no_module_imports_a_layer_above_its_own():
    upward = [
        f"{module} imports {dep}"
        for module, deps in _imports().items()
        if module != "recausal"  # the package facade re-exports the public API
        for dep in deps
        if _layer(dep) > _layer(module)
    ]
    assert upward == []


def test_there_are_no_import_cycles():
    graph = nx.DiGraph([(m, d) for m, deps in _imports().items() for d in deps])
    assert list(nx.simple_cycles(graph)) == []


def test_the_causal_core_needs_neither_torch_nor_recbole():
    offending = []
    for path in (PACKAGE / "causal").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offending += [
                f"{path.name}: {n}" for n in names if n.split(".")[0] in ("torch", "recbole")
            ]
    assert offending == []
