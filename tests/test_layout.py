"""The package's layout: no import cycle (lazy imports included), small modules.

The import graph is read from the source files themselves: every ``import``,
``from ... import`` (at any depth, inside functions too) of the Python
modules, and every ``import`` / ``cimport`` line of the Cython modules.  An
edge goes to the module named, or to the package whose ``__init__`` is
named.  The implicit import of a module's parent packages is not an edge:
Python initialises parents first whatever the child imports.
"""

import ast
import pathlib
import re

import pytest

import fastmlp

ROOT = pathlib.Path(fastmlp.__file__).resolve().parent
SOURCES = sorted(p for p in ROOT.rglob("*") if p.suffix in (".py", ".pyx", ".pxd"))


def module_name(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in SOURCES if p.suffix != ".pxd"}
PACKAGES = {module_name(p) for p in SOURCES if p.name == "__init__.py"}


def resolve(name):
    """``name`` if it is one of the package's modules, else None."""
    return name if name in MODULES else None


def absolute(current, level, target):
    """The absolute name of a relative import ``level`` dots up from ``current``."""
    base = current.split(".")
    if current not in PACKAGES:
        base = base[:-1]                     # a module's own package
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports_of(name, path):
    """The package modules that ``name`` imports, from its source."""
    found = set()
    if path.suffix == ".py":
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(resolve(a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                mod = absolute(name, node.level, node.module) if node.level else node.module
                for a in node.names:
                    # "from pkg import sub" names a module; else the module/package itself
                    found.add(resolve(f"{mod}.{a.name}") or resolve(mod))
    else:
        text = path.read_text()
        text = re.sub(r"#[^\n]*", "", text)          # comments
        for m in re.finditer(r"^\s*from\s+(\.*)([\w.]*)\s+c?import\s+\(?([\w ,\n]+?)\)?\s*$",
                             text, re.M):
            dots, mod, names = m.groups()
            mod = absolute(name, len(dots), mod) if dots else mod
            for a in re.split(r"[\s,]+", names.strip()):
                if a and a != "as":
                    found.add(resolve(f"{mod}.{a}") or resolve(mod))
        for m in re.finditer(r"^\s*c?import\s+([\w.]+)", text, re.M):
            found.add(resolve(m.group(1)))
    found.discard(None)
    found.discard(name)
    return found


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def find_cycle(graph):
    """One import cycle as a list of module names, or None."""
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return trail[trail.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt, trail + [nxt])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


def test_the_graph_sees_lazy_and_cython_imports():
    # the reader must find what the checks below rely on; a reader that
    # found nothing would pass them vacuously
    assert "fastmlp.backends._compiled" in GRAPH["fastmlp._platform"]      # lazy, in a function
    assert "fastmlp.backends._layers" in GRAPH["fastmlp.backends._step"]   # cimport
    assert "fastmlp.backends._step" in GRAPH["fastmlp.backends._compiled"]  # after a comment
    assert "fastmlp._trainer" in GRAPH["fastmlp._base"]
    assert "fastmlp._classifier" in GRAPH["fastmlp"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH))


@pytest.mark.parametrize("leaf", ["fastmlp._io", "fastmlp._registry", "fastmlp._trainer",
                                  "fastmlp._network", "fastmlp._schedule"])
def test_core_modules_do_not_reach_the_estimators(leaf):
    """The file format, the registry, the trainer and the network state know
    nothing of the estimators (the trainer runs without scikit-learn)."""
    seen, todo = set(), [leaf]
    while todo:
        for nxt in GRAPH[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    assert not seen & {"fastmlp._base", "fastmlp._classifier", "fastmlp"}, sorted(seen)


def test_trainer_imports_no_scikit_learn():
    for name in ("fastmlp._trainer", "fastmlp._history", "fastmlp._network",
                 "fastmlp._schedule"):
        assert "sklearn" not in MODULES[name].read_text(), name


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p) + p.suffix)
def test_no_module_is_over_500_lines(path):
    n = len(path.read_text().splitlines())
    assert n <= 500, f"{path.name} has {n} lines; split it by job"
