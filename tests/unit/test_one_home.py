"""One home per rule (issue 34, item 3), read from the package's own code with ``ast`` like test_structure.py:
each rule is defined in one module and called from the others, so that a second copy, written again
somewhere else, fails here."""

from __future__ import annotations

import ast
from typing import Dict, Set

from test_structure import GRAPH, MODULES, calls_of, ours, parse, third_party  # tests/unit is on sys.path

TREES: Dict[str, ast.AST] = {m: parse(p) for m, p in MODULES.items()}


def defined_in(name: str) -> Set[str]:
    """The modules that define ``name`` at their top level (a function, a class or an assignment)."""
    out = set()
    for m, tree in TREES.items():
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
                out.add(m)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(x, ast.Name) and x.id == name for t in targets for x in ast.walk(t)):
                    out.add(m)
    return out


def reaches(module: str) -> Set[str]:
    """Every module of ours that ``module`` imports, at any depth of its code, transitively (itself included)."""
    seen, todo = {module}, [module]
    while todo:
        for o in ours(GRAPH[todo.pop()]) - seen:
            seen.add(o)
            todo.append(o)
    return seen


def compared_constants(module: str) -> Set[str]:
    """The string constants ``module`` compares with (``x == "c"``, ``"c" in x``)."""
    out = set()
    for node in ast.walk(TREES[module]):
        if isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                if isinstance(side, ast.Constant) and isinstance(side.value, str):
                    out.add(side.value)
    return out


def test_the_best_layer_rule_has_one_home():
    """``ssl_ray.probes.choice`` chooses a layer; a trial's summary (probes) and the sweep's selection (reports,
    and through it ``results.load``'s ``best_layer``) both call it, and nothing else decides between
    ``linear_val`` and ``ncc_val``. It stays torch-free: ``results.load`` never imports torch."""
    for name in ("best_layer", "selection_metric", "reported_metric", "layer_order"):
        assert defined_in(name) == {"ssl_ray.probes.choice"}, (name, defined_in(name))
    callers = set(calls_of("best_layer"))
    assert callers == {"ssl_ray.probes.summary", "ssl_ray.reports.selection"}, callers
    assert "ssl_ray.reports.selection" in ours(GRAPH["ssl_ray.results"])
    for m in MODULES:
        if m != "ssl_ray.probes.choice":
            assert not compared_constants(m) & {"linear_val", "ncc_val"}, f"{m} chooses the selection metric itself"
    for m in reaches("ssl_ray.probes.choice"):
        assert not third_party(GRAPH[m]) & {"torch", "ray", "mlflow"}, f"ssl_ray.probes.choice reaches {m}"


def docstrings(tree: ast.AST) -> Set[int]:
    """The ids of the docstring nodes of a module, its classes and functions (text, not code)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def code_strings(module: str) -> Set[str]:
    """The string constants in ``module``'s code (docstrings left out), f-strings' literal parts included."""
    tree = TREES[module]
    skip = docstrings(tree)
    return {
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip
    }


def test_the_chance_target_has_one_home():
    """``permuted_1.0`` is written once, as ``CHANCE_CONTROL`` in the torch-free ``ssl_ray.probes.target_names``;
    the trial summary, the sweep summary, the tables and the figures name it from there."""
    writers = {m for m in MODULES if any("permuted_1.0" in s for s in code_strings(m))}
    assert writers == {"ssl_ray.probes.target_names"}, writers
    assert defined_in("CHANCE_CONTROL") == {"ssl_ray.probes.target_names"}
    for m in (
        "ssl_ray.probes.summary",
        "ssl_ray.sweep.summary",
        "ssl_ray.reports.tables",
        "ssl_ray.reports.randomness_figures",
    ):
        assert "ssl_ray.probes.target_names" in ours(GRAPH[m]), m
    for name in ("parse_target", "default_targets", "most_random"):
        assert defined_in(name) == {"ssl_ray.probes.target_names"}, (name, defined_in(name))
    for m in reaches("ssl_ray.probes.target_names"):
        assert not third_party(GRAPH[m]) & {"torch", "ray", "mlflow", "numpy"}, f"target_names reaches {m}"


def test_the_path_keys_have_one_home():
    """The config keys that name files are listed once, as dotted keys (``ssl_ray.config.io.PATH_KEYS``): the
    recipe reader and validation's normalization both read that list, and no other module lists two of them,
    dotted or as one section's names."""
    import dataclasses

    from ssl_ray.config import ExperimentConfig
    from ssl_ray.config.io import PATH_KEYS

    sections = {f.name: f.default_factory() for f in dataclasses.fields(ExperimentConfig)}
    for key in PATH_KEYS:  # each is a real, optional string key of the schema
        section, name = key.split(".")
        assert hasattr(sections[section], name) and getattr(sections[section], name) is None, key
    assert defined_in("PATH_KEYS") == {"ssl_ray.config.io"}, defined_in("PATH_KEYS")
    for m in ("ssl_ray.validation", "ssl_ray.sweep.recipe"):
        assert "ssl_ray.config.io" in ours(GRAPH[m]), m
    by_section: Dict[str, Set[str]] = {}
    for key in PATH_KEYS:
        by_section.setdefault(key.split(".")[0], set()).add(key.split(".")[1])

    def strings(node) -> Set[str]:  # a collection's own string elements
        elts = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
        return {n.value for n in elts if isinstance(n, ast.Constant) and isinstance(n.value, str)}

    for m, tree in TREES.items():
        if m == "ssl_ray.config.io":
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                assert len(strings(node) & set(PATH_KEYS)) < 2, f"{m} lists path keys (line {node.lineno})"
            if isinstance(node, ast.Dict):
                for k, v in zip(node.keys, node.values):
                    if isinstance(k, ast.Constant) and k.value in by_section:
                        assert len(strings(v) & by_section[k.value]) < 2, f"{m} lists path keys (line {node.lineno})"


def test_the_samplers_have_one_home():
    """``ssl_ray.config.sweep.SAMPLERS`` names every sampler and what it draws; parsing, validation and the help
    read it, and no other module lists sampler names again. ``ssl_ray.sweep.space`` translates each sampler into
    the engines' terms, keyed by name: tests/unit/sweep/test_search_space.py checks that it covers them all."""
    from ssl_ray.config.sweep import SAMPLERS

    assert defined_in("SAMPLERS") == {"ssl_ray.config.sweep"}, defined_in("SAMPLERS")
    names = set(SAMPLERS)
    for m, tree in TREES.items():
        if m in ("ssl_ray.config.sweep", "ssl_ray.sweep.space"):
            continue
        for node in ast.walk(tree):
            elts = (
                node.elts
                if isinstance(node, (ast.Tuple, ast.List, ast.Set))
                else node.keys
                if isinstance(node, ast.Dict)
                else []
            )
            listed = {e.value for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str)} & names
            assert len(listed) < 2, f"{m} lists samplers {sorted(listed)} (line {node.lineno})"


def test_the_sweep_and_resume_commands_live_in_sweep():
    """``ssl-ray sweep`` and ``ssl-ray resume`` live in ``ssl_ray.sweep.commands``, beside their parser
    (``ssl_ray.sweep.cli``); ``ssl_ray.cli`` only dispatches to them: of the sweep package it imports the
    commands alone, and neither validation nor the reports (but ``ssl-ray report``'s own command)."""
    for name in ("sweep_main", "resume_main", "resume_config", "claim_sweep", "sweep_exit_code", "sweep_report"):
        assert defined_in(name) == {"ssl_ray.sweep.commands"}, (name, defined_in(name))
    used = ours(GRAPH["ssl_ray.cli"])
    assert {m for m in used if m.startswith("ssl_ray.sweep")} == {"ssl_ray.sweep.commands"}, used
    allowed = {"ssl_ray.reports.cli"}
    assert not {m for m in used if m == "ssl_ray.validation" or m.startswith("ssl_ray.reports.") and m not in allowed}


def test_no_module_uses_another_modules_private_names():
    """A helper another module needs is public (``ssl_ray.reports.plotting``'s ``figure_grid``, ``finish_figure``,
    ...): no module imports a ``_name`` from another of ours, or reads one through a module it imported."""
    bad = []
    for m, tree in TREES.items():
        modules = {}  # local name -> our module it names
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ssl_ray"):
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        bad.append(f"{m}: from {node.module} import {a.name}")
                    if f"{node.module}.{a.name}" in MODULES:
                        modules[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.Import):
                modules.update({a.asname: a.name for a in node.names if a.asname and a.name in MODULES})
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                bad.append(f"{m}: {modules[node.value.id]}.{node.attr}")
    assert not bad, bad


# Names a module imports only to offer them, on purpose: a contract of DESIGN.md names them there.
OFFERED = {("ssl_ray.probes.metrics", "linear_probe_accuracy"): "DESIGN.md: ssl_ray.probes.metrics's contract"}


def own_names(module: str) -> Set[str]:
    """The names ``module`` binds at its top level itself (not by importing them)."""
    out = set()
    for node in TREES[module].body:
        for n in [node, *ast.walk(node)] if isinstance(node, (ast.If, ast.Try)) else [node]:
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.add(n.name)
            elif isinstance(n, (ast.Assign, ast.AnnAssign)):
                out.update(
                    x.id
                    for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                    for x in ast.walk(t)
                    if isinstance(x, ast.Name)
                )
    return out


def test_no_module_re_exports_another_modules_names():
    """No re-export shims: every name a module imports from one of ours is used there (callers import it from its
    home), but in a package's ``__init__`` (its public face) and the few ``OFFERED``; a module imported for
    what importing it does (a registry filled) is imported as a module. A name read through a module
    (``figures.embeddings``) is one that module defines."""
    bad = []
    for m, tree in TREES.items():
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        modules = {}  # local name -> our (non-package) module it names
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ssl_ray"):
                for a in node.names:
                    name = a.asname or a.name
                    if f"{node.module}.{a.name}" in MODULES:
                        modules[name] = f"{node.module}.{a.name}"
                    elif name not in used and MODULES[m].name != "__init__.py" and (m, name) not in OFFERED:
                        bad.append(f"{m}: {name} (from {node.module})")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
                home = modules[node.value.id]
                if (
                    MODULES[home].name != "__init__.py"
                    and node.attr not in own_names(home)
                    and f"{home}.{node.attr}" not in MODULES
                ):
                    bad.append(f"{m}: {home}.{node.attr}")
    assert not bad, bad


def test_a_packages_concept_lives_in_the_package():
    """No module at the package root is named for one of its subpackages (``sweep_checks.py`` held the sweep's
    own checks outside ``sweep/``, a cut the line cap made): what a subpackage owns lives in it."""
    packages = {m.split(".")[1] for m in MODULES if MODULES[m].name == "__init__.py" and m.count(".") == 1}
    roots = {m.split(".")[1] for m in MODULES if m.count(".") == 1 and MODULES[m].name != "__init__.py"}
    assert packages >= {"sweep", "probes", "reports", "data"}, packages
    assert not {r for r in roots if r.split("_")[0] in packages}, roots
    for name in ("check_search", "check_fits", "check_storage", "check_samplers", "pbt_keys"):
        assert defined_in(name) == {"ssl_ray.sweep.checks"}, (name, defined_in(name))
