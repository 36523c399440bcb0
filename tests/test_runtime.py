"""Run-time choices: ISA paths, thread count, environment variables, ``python -m lowbit``."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ISAS, forced_isa, num_threads

import lowbit as lb
import lowbit.reference as lbr

KNOWN_ISAS = ("scalar", "avx2", "avx512", "avx512_vnni", "neon")


def run_python(code, tmp_path, **env_overrides):
    """Run ``python -c code`` in a fresh interpreter (away from the source tree) and return the
    CompletedProcess. Environment variables set to None are removed."""
    env = dict(os.environ)
    for key in ("LOWBIT_ISA", "LOWBIT_NUM_THREADS"):
        env.pop(key, None)
    for key, value in env_overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_available_isas():
    isas = lb.available_isas()
    assert isinstance(isas, list) and isas
    assert isas[0] == "scalar"
    assert all(isinstance(name, str) for name in isas)
    assert len(set(isas)) == len(isas)
    assert set(isas) <= set(KNOWN_ISAS), isas
    # Listed lowest first, in the package's ISA vocabulary order.
    assert isas == sorted(isas, key=KNOWN_ISAS.index)
    assert lb.available_isas() == isas  # a fresh list each time, same content
    isas.append("bogus")
    assert "bogus" not in lb.available_isas()


def test_set_isa_each_and_auto():
    best = lb.available_isas()[-1]
    assert lb.cpu_info()["isa"] == best  # "auto" (the import default here) picks the best
    for name in ISAS:
        lb.set_isa(name)
        assert lb.cpu_info()["isa"] == name
    lb.set_isa("auto")
    assert lb.cpu_info()["isa"] == best


def test_forced_isa_helper_restores_auto():
    best = lb.available_isas()[-1]
    with forced_isa("scalar"):
        assert lb.cpu_info()["isa"] == "scalar"
    assert lb.cpu_info()["isa"] == best
    with pytest.raises(RuntimeError):
        with forced_isa("scalar"):
            raise RuntimeError("boom")
    assert lb.cpu_info()["isa"] == best


@pytest.mark.parametrize("name", ["bogus", "", "AVX2", "sse2", "avx512_vnni_plus", "auto "]
                         + [n for n in KNOWN_ISAS if n not in ISAS])
def test_set_isa_unknown_lists_choices(name):
    lb.set_isa("scalar")
    with pytest.raises(ValueError) as info:
        lb.set_isa(name)
    msg = str(info.value)
    for choice in ISAS:
        assert choice in msg, msg
    assert lb.cpu_info()["isa"] == "scalar"  # a refused name changes nothing


def test_set_isa_rejects_non_strings():
    with pytest.raises(TypeError):
        lb.set_isa(None)
    with pytest.raises(TypeError):
        lb.set_isa(1)


def test_cpu_info():
    info = lb.cpu_info()
    assert {"isa", "available", "threads", "flags"} <= set(info)
    assert info["isa"] in info["available"]
    assert info["available"] == lb.available_isas()
    assert info["threads"] == lb.get_num_threads()
    assert isinstance(info["threads"], int) and info["threads"] >= 1
    assert isinstance(info["flags"], list)
    assert all(isinstance(f, str) for f in info["flags"])
    if "avx2" in info["available"]:
        assert "avx2" in info["flags"]
    with forced_isa("scalar"):
        assert lb.cpu_info()["isa"] == "scalar"


# ----------------------------------------------------------------------------------------------
# The ISA manifest (cpp/include/lowbit/isa_list.inc) and the tables it builds


def test_manifest_vocabulary_and_order():
    manifest = lb._core.isa_manifest()
    names = [e["name"] for e in manifest]
    assert tuple(names) == KNOWN_ISAS
    assert manifest[0]["parent"] == "scalar"
    families = {f for _, f in lb._core.kernel_families()}
    for i, e in enumerate(manifest):
        if i:  # parents come first
            assert names.index(e["parent"]) < i, e
        assert e["families"] and set(e["families"]) <= families, e
        if e["emulated"]:
            assert e["built"], e
    available = [e["name"] for e in manifest if e["built"] and e["cpu"]]
    assert available == lb.available_isas()
    # A path is offered only with its whole parent chain.
    by_name = {e["name"]: e for e in manifest}
    for name in available:
        assert by_name[name]["parent"] in available


def test_kernel_sources_follow_the_manifest():
    """Every path overrides every slot of each family it claims, takes every other slot from its
    parent, and so differs from its parent somewhere."""
    manifest = {e["name"]: e for e in lb._core.isa_manifest()}
    family_of = dict(lb._core.kernel_families())
    assert list(family_of) == lb.cpu_info()["kernels"]
    sources = lb.cpu_info()["kernel_sources"]
    assert list(sources) == lb.available_isas()
    for isa, src in sources.items():
        assert list(src) == list(family_of), isa
        entry = manifest[isa]
        if isa == "scalar":
            assert set(src.values()) == {"scalar"}
            continue
        parent = sources[entry["parent"]]
        for slot, family in family_of.items():
            if family in entry["families"]:
                assert src[slot] == isa, f"{isa} claims {family} but {slot} comes from {src[slot]}"
            else:
                assert src[slot] == parent[slot], (isa, slot)
        assert any(src[slot] != parent[slot] for slot in src), f"{isa} equals {entry['parent']}"
    with pytest.raises(ValueError):
        lb._core.kernel_sources("bogus")


def test_emulated_paths_reported():
    info = lb.cpu_info()
    manifest = {e["name"]: e for e in lb._core.isa_manifest()}
    assert set(info["emulated"]) <= set(info["available"])
    for name in info["emulated"]:
        assert manifest[name]["emulated"]


def test_num_threads():
    before = lb.get_num_threads()
    assert isinstance(before, int) and before >= 1
    for n in (1, 2, 3, 1):
        lb.set_num_threads(n)
        assert lb.get_num_threads() == n
        assert lb.cpu_info()["threads"] == n
    lb.set_num_threads(np.int64(2))
    assert lb.get_num_threads() == 2
    with pytest.raises(TypeError):
        lb.set_num_threads(1.5)
    with pytest.raises(TypeError):
        lb.set_num_threads("2")
    assert lb.get_num_threads() == 2
    lb.set_num_threads(before)


def test_results_do_not_depend_on_isa_or_threads(rng):
    x = (rng.standard_normal(100_003) * 50).astype(np.float32)
    want = lbr.quantize(x, 0.37, 3)
    for name in ISAS:
        for n in (1, 2, 3):
            with forced_isa(name), num_threads(n):
                np.testing.assert_array_equal(lb.quantize(x, 0.37, 3), want, err_msg=f"{name} {n}")


# ----------------------------------------------------------------------------------------------
# In a fresh interpreter


@pytest.mark.parametrize("name", ISAS)
def test_env_lowbit_isa(name, tmp_path):
    code = "import lowbit as lb; print(lb.cpu_info()['isa'])"
    r = run_python(code, tmp_path, LOWBIT_ISA=name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == name


def test_env_lowbit_isa_auto_and_unset(tmp_path):
    code = "import lowbit as lb; print(lb.cpu_info()['isa'])"
    best = lb.available_isas()[-1]
    for value in ("auto", None):
        r = run_python(code, tmp_path, LOWBIT_ISA=value)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == best


def test_env_lowbit_isa_unknown_warns_and_uses_auto(tmp_path):
    r = run_python("import lowbit as lb; print(lb.cpu_info()['isa'])", tmp_path,
                   LOWBIT_ISA="bogus")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == lb.available_isas()[-1]
    assert "RuntimeWarning" in r.stderr and "bogus" in r.stderr and "'auto'" in r.stderr
    for choice in ISAS:
        assert choice in r.stderr


@pytest.mark.parametrize("n", [1, 3])
def test_env_lowbit_num_threads(n, tmp_path):
    code = "import lowbit as lb; print(lb.get_num_threads(), lb.cpu_info()['threads'])"
    r = run_python(code, tmp_path, LOWBIT_NUM_THREADS=str(n))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(n), str(n)]


def test_env_both_and_results(tmp_path):
    code = (
        "import numpy as np, lowbit as lb, lowbit.reference as lbr\n"
        "x = np.linspace(-300, 300, 100_001, dtype=np.float32)\n"
        "assert (lb.quantize(x, 1.5, 2) == lbr.quantize(x, 1.5, 2)).all()\n"
        "print(lb.cpu_info()['isa'], lb.get_num_threads())\n"
    )
    r = run_python(code, tmp_path, LOWBIT_ISA="scalar", LOWBIT_NUM_THREADS="2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["scalar", "2"]


def test_python_dash_m_lowbit(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("LOWBIT_ISA", "LOWBIT_NUM_THREADS")}
    r = subprocess.run([sys.executable, "-m", "lowbit"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip()
    for name in ISAS:
        assert name in r.stdout
