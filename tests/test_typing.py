"""Type annotations: every public function and method carries them (inspect.signature shows
them), and mypy passes on src/lowbit (the configuration is pyproject.toml's [tool.mypy])."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import pytest

import lowbit as lb

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def _public_callables():
    for name in lb.__all__:
        obj = getattr(lb, name)
        if inspect.ismodule(obj):
            continue
        if not inspect.isclass(obj):
            yield name, obj
            continue
        for attr, member in vars(obj).items():
            if isinstance(member, (classmethod, staticmethod)):
                member = member.__func__
            if callable(member) and (attr == "__init__" or not attr.startswith("_")):
                yield f"{name}.{attr}", member


@pytest.mark.parametrize("name,fn", list(_public_callables()),
                         ids=[n for n, _ in _public_callables()])
def test_public_signature_is_annotated(name, fn):
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        pytest.skip("no signature")
    missing = [p.name for p in sig.parameters.values()
               if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty]
    assert not missing, f"{name}: parameters without annotations: {missing}"
    assert sig.return_annotation is not inspect.Signature.empty, f"{name}: no return annotation"


def test_mypy_passes():
    pytest.importorskip("mypy", reason="mypy is in the test extra")
    if not os.path.exists(os.path.join(ROOT, "src", "lowbit")):
        pytest.skip("not run from a source tree")
    r = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
