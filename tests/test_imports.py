"""The import structure of the package, read from its sources.

- The intra-package import graph (every ``import lowbit.x``, ``from lowbit import x``,
  ``from . import x``, ``from .x import y``, at module level or inside a function) is a DAG.
- ``lowbit.reference`` and the modules it imports are the oracle: they reach the argument
  checks, the calibration formulas and the other reference modules, never the compiled API
  (``_core``, ``_quant``, ``_gemm``, ``_qtensor``, ``_linear``, ...); and no API module imports
  the reference.
- Every module imports on its own in a fresh interpreter, both normally and with the package's
  ``__init__`` bypassed (so a module cannot lean on something ``__init__`` loaded before it),
  and then has loaded nothing the static graph does not show.

An edge goes to the module named (``from . import x`` names ``x`` when ``x`` is a module, else
the package); the parent packages Python runs first are not edges. Imports through
``importlib`` (the lazy ``lowbit.models.__getattr__``) are invisible to the graph.
"""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import lowbit

SRC = Path(__file__).resolve().parents[1] / "src" / "lowbit"
PKG = "lowbit"

# the oracle may reach these (plus every module named lowbit._reference* or lowbit._checks*)
REFERENCE_SIDE = {"lowbit.reference", "lowbit._calib", "lowbit._bases", "lowbit._formats"}
# the compiled API: modules the reference must never reach
API = {"lowbit", "lowbit._core", "lowbit._quant", "lowbit._gemm", "lowbit._qtensor",
       "lowbit._linear", "lowbit._observer", "lowbit._runtime", "lowbit.qat", "lowbit.mixed",
       "lowbit._formats_api"}


def _module_name(path: Path) -> str:
    parts = (PKG,) + path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1]) if parts[-1] == "__init__" else ".".join(parts)


def _modules() -> dict:
    """Module name -> (source path, is a package), for every .py file under src/lowbit, plus the
    compiled extension (its stub stands for it)."""
    mods = {_module_name(p): (p, p.name == "__init__.py") for p in SRC.rglob("*.py")}
    mods[f"{PKG}._core"] = (SRC / "_core.pyi", False)
    return mods


def _resolve(name: str, mods: dict) -> str:
    """The deepest module of the package that the dotted ``name`` names."""
    while name not in mods:
        name = name.rpartition(".")[0]
    return name


def build_graph() -> dict:
    """Module -> set of the package's modules it imports anywhere in its source."""
    mods = _modules()
    graph = {}
    for mod, (path, is_pkg) in mods.items():
        edges = set()
        if path.suffix == ".py":
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name == PKG or alias.name.startswith(PKG + "."):
                            edges.add(_resolve(alias.name, mods))
                elif isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = mod if is_pkg else mod.rpartition(".")[0]
                        for _ in range(node.level - 1):
                            base = base.rpartition(".")[0]
                        target = f"{base}.{node.module}" if node.module else base
                    else:
                        target = node.module or ""
                    if target != PKG and not target.startswith(PKG + "."):
                        continue
                    for alias in node.names:
                        sub = f"{target}.{alias.name}"
                        edges.add(sub if sub in mods else _resolve(target, mods))
        edges.discard(mod)
        graph[mod] = edges
    return graph


def find_cycle(graph: dict):
    """A list of modules ``[a, b, ..., a]`` forming a cycle, or None."""
    state = {}                       # absent: unseen, 1: on the stack, 2: done
    stack = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def path_to(graph: dict, start: str, goal) -> list:
    """A shortest import chain from ``start`` to a module satisfying ``goal`` (BFS), or []."""
    prev = {start: None}
    queue = [start]
    for m in queue:
        if goal(m):
            chain = []
            while m is not None:
                chain.append(m)
                m = prev[m]
            return chain[::-1]
        for n in sorted(graph.get(m, ())):
            if n not in prev:
                prev[n] = m
                queue.append(n)
    return []


def closure(graph: dict, start: str) -> set:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(graph.get(m, ()))
    return seen


def _reference_side(m: str) -> bool:
    return m in REFERENCE_SIDE or m.startswith(("lowbit._reference", "lowbit._checks"))


GRAPH = build_graph()


def test_graph_sees_the_imports():
    """The parser works: known edges are there (else the DAG test would pass vacuously)."""
    assert {"lowbit._quant", "lowbit._gemm", "lowbit.reference"} <= GRAPH["lowbit"]
    assert "lowbit._calib" in GRAPH["lowbit._quant"]
    assert "lowbit._core" in GRAPH["lowbit._gemm"]
    assert "lowbit" in GRAPH["lowbit.models.digits"]            # import lowbit as lb
    assert "lowbit.qat" in GRAPH["lowbit.models.digits"]        # function level: from .. import
    assert "lowbit.report" in GRAPH["lowbit.__main__"]          # function level: from . import
    assert "lowbit.models" in GRAPH["lowbit.models.digits"]     # from . import apply_linear


def test_import_graph_is_a_dag():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_reference_imports_no_api_module():
    bad = path_to(GRAPH, "lowbit.reference", lambda m: not _reference_side(m))
    assert not bad, ("lowbit.reference reaches a module outside the reference, the checks and "
                     "the calibration formulas: " + " -> ".join(bad))
    assert not closure(GRAPH, "lowbit.reference") & API


@pytest.mark.parametrize("mod", sorted(API - {"lowbit"}))
def test_api_does_not_import_the_reference(mod):
    bad = path_to(GRAPH, mod, lambda m: m.startswith(("lowbit.reference", "lowbit._reference")))
    assert not bad, "the compiled API reaches the reference: " + " -> ".join(bad)


# every module but the extension, each imported by itself in a fresh interpreter
MODULES = sorted(m for m in GRAPH if m != "lowbit._core")
_ROOT = str(Path(lowbit.__file__).resolve().parents[1])     # the lowbit under test

_BARE = """\
import importlib, json, sys, types
pkg = types.ModuleType({pkg!r})
pkg.__path__ = [{path!r}]
sys.modules[{pkg!r}] = pkg            # lowbit/__init__.py does not run
importlib.import_module({mod!r})
print(json.dumps(sorted(m for m in sys.modules if m.startswith({pkg!r} + "."))))
"""


def _run(code: str, tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([_ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("mod", MODULES)
def test_module_imports_alone(mod, tmp_path):
    r = _run(f"import {mod}", tmp_path)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("mod", [m for m in MODULES if "lowbit" not in closure(GRAPH, m)])
def test_module_imports_without_the_package_init(mod, tmp_path):
    """Imported with a bare ``lowbit`` package (modules that import ``lowbit`` itself are left
    out): the module loads with only what it imports, and loads nothing the graph misses."""
    code = _BARE.format(pkg=PKG, path=str(Path(lowbit.__file__).resolve().parent), mod=mod)
    r = _run(code, tmp_path)
    assert r.returncode == 0, r.stderr
    loaded = set(json.loads(r.stdout.splitlines()[-1]))
    assert loaded <= closure(GRAPH, mod), f"{mod} loaded {sorted(loaded - closure(GRAPH, mod))}"
    if mod == "lowbit.reference":
        assert "lowbit._core" not in loaded
