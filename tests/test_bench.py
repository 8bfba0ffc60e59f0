"""The benchmark scripts run end to end on small settings and write what they promise."""

import importlib.util
import json
import os
import pathlib

import pytest

BENCH = pathlib.Path(__file__).resolve().parent.parent / "bench"


def load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_suite_writes_table_json_and_plot(tmp_path, capsys):
    suite = load("suite")
    out_json, out_png = tmp_path / "b.json", tmp_path / "b.png"
    rc = suite.main(["--epochs", "1", "--repeats", "1", "--batch-sizes", "20000,30000",
                     "--rows", "fastmlp,fastmlp-dense,numpy,keras,sklearn", "--threads", "2",
                     "--json", str(out_json), "--plot", str(out_png)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "fastmlp is" in text and "where the time goes" in text
    data = json.loads(out_json.read_text())
    rows = {(r["row"], r["batch_size"]) for r in data["results"]}
    assert rows == {(k, b) for k in ("fastmlp", "fastmlp-dense", "numpy", "keras", "sklearn")
                    for b in (20000, 30000)}
    for r in data["results"]:
        assert r["seconds"] > 0 and 0.0 <= r["test_acc"] <= 1.0
        assert r["fastmlp_speedup"] == pytest.approx(
            r["seconds"] / next(x["seconds"] for x in data["results"]
                                if x["row"] == "fastmlp" and x["batch_size"] == r["batch_size"]))
    assert data["machine"]["cores"] >= 1 and data["machine"]["blas"]
    assert set(data["phases_fastmlp"]["seconds"]) >= {"gather", "forward", "gradient"}
    assert out_png.stat().st_size > 10_000
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_suite_rejects_unknown_rows(capsys):
    with pytest.raises(SystemExit):
        load("suite").main(["--rows", "fastmlp,caffe"])
    assert "unknown rows" in capsys.readouterr().err


def test_backends_bench_runs(tmp_path):
    bench = load("backends")
    out = tmp_path / "b.json"
    assert bench.main(["--batch-sizes", "30000", "--threads", "1", "--epochs", "1",
                       "--repeats", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert {r["backend"] for r in rows} == {"numpy", "compiled"}


def test_regularisation_study_runs_and_reports(tmp_path, capsys):
    from fastmlp.experiments import study
    assert study.converged_epoch([10.0, 5.0, 4.0, 3.02, 3.0, 3.01]) == 4
    # the checkout's script is the same command
    assert load("regularisation").main is study.main
    rc = study.main(["--epochs", "2", "--lambdas", "0.01,0.2", "--processes", "2",
                     "--out-dir", str(tmp_path)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "0.9728" in text                      # the blog's figure for lambda2 0.2
    data = json.loads((tmp_path / "study.json").read_text())
    assert data["blog_results"]["0.2"] == [0.9946, 0.9728, 700]
    assert [r["lambda2"] for r in data["results"]] == [0.01, 0.2]
    shares = [r["final_reg_share"] for r in data["results"]]
    assert 0 < shares[0] < shares[1] < 1          # more lambda, larger share
    assert (tmp_path / "study.png").read_bytes()[:4] == b"\x89PNG"


def test_suite_equal_terms_rmsprop_rows(tmp_path, capsys):
    """fastmlp rmsprop and Keras rmsprop from the same initial weights: both
    rows run, the comparison line is printed, and one epoch at batch 500
    reaches similar accuracy (same data, objective and optimiser)."""
    suite = load("suite")
    out_json = tmp_path / "b.json"
    rc = suite.main(["--epochs", "3", "--repeats", "1", "--batch-sizes", "500",
                     "--rows", "fastmlp-rmsprop,keras-rmsprop", "--threads", "2",
                     "--json", str(out_json)])
    assert rc == 0
    assert "equal terms, batch 500" in capsys.readouterr().out
    res = {r["row"]: r for r in json.loads(out_json.read_text())["results"]}
    f, k = res["fastmlp-rmsprop"], res["keras-rmsprop"]
    assert f["test_acc"] > 0.8 and abs(f["test_acc"] - k["test_acc"]) < 0.03
    assert f["keras_rmsprop_speedup"] == pytest.approx(k["seconds"] / f["seconds"])


def fixed_machine(roofline, monkeypatch, tmp_path):
    """roofline's machine figures made fixed (and quick), its cache in tmp_path."""
    monkeypatch.setattr(roofline, "CACHE", str(tmp_path / "machine.json"))
    monkeypatch.setattr(roofline, "gemm_gflops", lambda threads: 100.0 * threads)
    monkeypatch.setattr(roofline, "torch_gflops", lambda threads: None)
    monkeypatch.setattr(roofline, "own_gflops", lambda threads: 200.0 * threads)
    monkeypatch.setattr(roofline, "add_gbs", lambda: 30.0)


def test_roofline_takes_each_cells_best_pass(tmp_path, capsys, monkeypatch):
    roofline = load("roofline")
    fixed_machine(roofline, monkeypatch, tmp_path)
    monkeypatch.setattr(roofline, "settle", lambda: None)    # no half-second sleeps
    seen = []

    def cell(X, y, hidden, batch, threads):
        # the real cell, made a second slower in the first pass of the one-layer
        # cell and in the second pass of the two-layer one
        r = real_cell(X, y, hidden, batch, threads)
        n = sum(1 for h, _, _ in seen if h == hidden)
        r["seconds"] += 1.0 if n == (0 if len(hidden) == 1 else 1) else 0.0
        seen.append((hidden, batch, r["seconds"]))
        return r
    real_cell = roofline.cell
    monkeypatch.setattr(roofline, "cell", cell)
    out, png = tmp_path / "grid.json", tmp_path / "grid.png"
    assert roofline.main(["--widths", "16", "--batches", "100", "--rows", "600",
                          "--repeats", "2", "--others", "", "--json", str(out),
                          "--plot", str(png)]) == 0
    text = capsys.readouterr().out
    assert "pass 1/2" in text and "pass 2/2" in text
    cells = json.loads(out.read_text())["cells"]
    assert [(c["hidden"], c["batch"]) for c in cells] == [([16], 100), ([16, 16], 100)]
    for c in cells:
        # two passes ran the cell; the JSON has the faster of them
        runs = [s for h, b, s in seen if list(h) == c["hidden"] and b == c["batch"]]
        assert len(runs) == 2 and c["seconds"] == min(runs) < 1.0
        assert c["forward_pct"] > 0 and c["gradient_pct"] > 0
        peak = 200.0 * (os.cpu_count() or 1)             # fixed_machine's
        assert c["forward_pct"] == pytest.approx(100 * c["forward_gflops"] / peak)
    assert not png.exists()                          # the heatmap is of torch's ratio


def test_roofline_machine_figures_are_the_higher_of_before_and_after(tmp_path, monkeypatch):
    roofline = load("roofline")
    fixed_machine(roofline, monkeypatch, tmp_path)
    first = roofline.measure_machine()
    assert first["gemm_gflops_1_thread"] == 200.0 and first["add_gbs"] == 30.0
    before = dict(first, add_gbs=40.0,
                  gemm_gflops_1_thread_by_engine=dict(blas=50.0, torch=None, fastmlp=250.0))
    again = roofline.measure_machine(before)
    assert again["gemm_gflops_1_thread_by_engine"] == dict(blas=100.0, torch=None,
                                                           fastmlp=250.0)
    assert again["gemm_gflops_1_thread"] == 250.0 and again["add_gbs"] == 40.0
    assert json.loads((tmp_path / "machine.json").read_text()) == again
