"""The package's shape, read from its own imports with ``ast`` (so it can fail): the config is a leaf,
the math is engine-free, nothing imports upward, and the module graph has no cycle."""

from __future__ import annotations

import ast
import gc
from pathlib import Path
from typing import Dict, List, Set

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "ssl_ray"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES: Dict[str, Path] = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def parse(path: Path) -> ast.AST:
    """The module's AST, parsed with the garbage collector paused: a finalizer that runs Python code in the
    middle of ``ast.parse`` (numba's, for dispatchers FFCV compiled in an earlier test) trips CPython 3.11's
    "AST constructor recursion depth mismatch" SystemError."""
    gc.disable()
    try:
        return ast.parse(path.read_text(), filename=str(path))
    finally:
        gc.enable()


def imports_of(path: Path) -> Set[str]:
    """Every module a file imports, at any depth of its code (function-level imports count)."""
    tree = parse(path)
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    out: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            for a in node.names:  # `from pkg import submodule`
                if f"{mod}.{a.name}" in MODULES:
                    out.add(f"{mod}.{a.name}")
    return out


GRAPH: Dict[str, Set[str]] = {m: imports_of(p) for m, p in MODULES.items()}


def ours(mods: Set[str]) -> Set[str]:
    """Our modules among ``mods``, each resolved to the module it names (an attribute import names its module)."""
    out = set()
    for m in mods:
        while m and m not in MODULES:
            m = m.rsplit(".", 1)[0] if "." in m else ""
        if m:
            out.add(m)
    return out


def third_party(mods: Set[str]) -> Set[str]:
    return {m.split(".")[0] for m in mods if not m.startswith("ssl_ray")}


def in_package(prefix: str) -> List[str]:
    return [m for m in MODULES if m == prefix or m.startswith(prefix + ".")]


def test_the_graph_is_read():
    """The reader finds what is there: a guard against a test that passes because it reads nothing."""
    assert len(MODULES) > 40
    assert "ssl_ray.errors" in ours(GRAPH["ssl_ray.config.schema"])
    assert "torch" in third_party(GRAPH["ssl_ray.objectives.vicreg"])


def test_config_is_a_leaf():
    mods = in_package("ssl_ray.config")
    assert mods, "ssl_ray/config/ is a package"
    for m in mods:
        bad = {o for o in ours(GRAPH[m]) if not (o == "ssl_ray.errors" or o.startswith("ssl_ray.config"))}
        assert not bad, f"{m} imports {sorted(bad)}"
        engines = third_party(GRAPH[m]) & {"ray", "torch", "mlflow", "torchvision", "ffcv"}
        assert not engines, f"{m} imports {sorted(engines)}"


@pytest.mark.parametrize(
    "prefix",
    [
        "ssl_ray.objectives",
        "ssl_ray.models",
        "ssl_ray.probes.metrics",
        "ssl_ray.probes.linear",
        "ssl_ray.probes.geometry",
        "ssl_ray.probes.mine",
    ],
)
def test_math_is_engine_free(prefix):
    for m in in_package(prefix):
        assert not third_party(GRAPH[m]) & {"ray", "mlflow"}, f"{m} imports an engine"
        # and nothing of ours that does, transitively
        seen, todo = set(), [m]
        while todo:
            cur = todo.pop()
            for o in ours(GRAPH[cur]) - seen:
                seen.add(o)
                todo.append(o)
                assert not third_party(GRAPH[o]) & {"ray", "mlflow"}, f"{m} reaches {o}, which imports an engine"


@pytest.mark.parametrize(
    "low, high",
    [
        ("ssl_ray.probes", "ssl_ray.train"),
        ("ssl_ray.probes", "ssl_ray.sweep"),
        ("ssl_ray.reports", "ssl_ray.train"),
        ("ssl_ray.models", "ssl_ray.train"),
        ("ssl_ray.objectives", "ssl_ray.train"),
        ("ssl_ray.data", "ssl_ray.probes"),
    ],
)
def test_nothing_imports_upward(low, high):
    for m in in_package(low):
        bad = {o for o in ours(GRAPH[m]) if o == high or o.startswith(high + ".")}
        assert not bad, f"{m} imports {sorted(bad)}"


def test_nothing_imports_experiments():
    for m in MODULES:
        assert not any(x == "experiments" or x.startswith("experiments.") for x in GRAPH[m]), m


def test_no_import_cycle():
    """Tarjan's strongly connected components over our modules; an import of a package's submodule does
    not count as importing the package (Python runs ``__init__`` first, but that is not a dependency)."""
    edges = {m: {o for o in ours(GRAPH[m]) if o != m and not m.startswith(o + ".")} for m in MODULES}
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in MODULES:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_module_is_too_long():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 300}
    assert not long, f"modules over 300 lines: {long}"


def calls_of(name: str, owner: str = "") -> Dict[str, List[str]]:
    """``{module: [enclosing function, ...]}`` for every call of ``name`` (``name(...)`` or ``x.name(...)``;
    with ``owner``, only ``owner.name(...)``)."""
    out: Dict[str, List[str]] = {}
    for m, p in MODULES.items():
        tree = parse(p)
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Call):
                    f = node.func
                    called = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
                    if owner and not (
                        isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == owner
                    ):
                        continue
                    if called == name:
                        out.setdefault(m, []).append(fn.name)
    return out


def test_state_pt_is_opened_by_exactly_one_function():
    torch_loads = calls_of("load", owner="torch")
    assert torch_loads == {"ssl_ray.checkpoints": ["load_state"]}, torch_loads
    named = [m for m, p in MODULES.items() if '"state.pt"' in p.read_text()]
    assert named == ["ssl_ray.checkpoints"], named


def test_the_config_is_validated_at_the_edge_only():
    """Once per process edge: the command line (and a resume) validate; the tuner, the trial and the worker
    receive the normalized config and never validate again."""
    edges = {"ssl_ray.sweep.commands", "ssl_ray.sweep.cli"}  # the sweep and resume commands; a sweep's flags
    callers = {m for name in ("validate_sweep", "validate_experiment") for m in calls_of(name)}
    assert callers <= edges | {"ssl_ray.validation"}, callers
    assert edges <= callers
    for m in in_package("ssl_ray.train") + in_package("ssl_ray.sweep") + in_package("ssl_ray.probes"):
        if m not in edges:
            assert "ssl_ray.validation" not in ours(GRAPH[m]), m
