"""The fastmlp command line, end to end through subprocesses."""

import io
import json
import subprocess
import sys

import numpy as np
import pytest

from fastmlp._cli_train import Progress
from fastmlp.datasets import load_digits


def fastmlp(*args, cwd, env=None):
    """Run the installed CLI outside the source folder."""
    return subprocess.run([sys.executable, "-m", "fastmlp", *map(str, args)],
                          capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def digits_train(tmp_path, *extra):
    return fastmlp("train", "--dataset", "digits", "--epochs", "3", "--batch-size", "64",
                   "--learning-rate", "0.05", "--hidden", "20,12", *extra, cwd=tmp_path)


def test_train_reports_and_writes_model_history_plot(tmp_path):
    out = digits_train(tmp_path, "--output", "m.npz", "--history", "h.csv", "--plot", "p.png")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sum(line.startswith("epoch ") for line in lines) == 3
    assert "\r" not in out.stdout                      # not a terminal: no progress bar
    assert any(line.startswith("time shares: gather") for line in lines)
    acc = next(float(line.split()[-1]) for line in lines if line.startswith("test accuracy"))
    assert 0.5 < acc <= 1.0
    assert (tmp_path / "m.npz").stat().st_size > 1000
    assert (tmp_path / "h.csv").read_text().count("\n") == 4
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    out = digits_train(tmp_path, "--history", "h.json", "--quiet")
    assert out.returncode == 0 and "epoch " not in out.stdout
    assert len(json.loads((tmp_path / "h.json").read_text())["cost"]) == 3


def test_predict_from_npy_npz_and_idx(tmp_path):
    assert digits_train(tmp_path, "--output", "m.npz").returncode == 0
    _, (Xt, yt) = load_digits()
    np.save(tmp_path / "x.npy", Xt[:25])
    out = fastmlp("predict", "m.npz", "x.npy", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    labels = [int(v) for v in out.stdout.split()]
    assert len(labels) == 25 and np.mean(np.array(labels) == yt[:25]) > 0.5
    np.savez(tmp_path / "x.npz", X=Xt[:7])
    out = fastmlp("predict", "m.npz", "x.npz", "--proba", cwd=tmp_path)
    rows = [list(map(float, r.split())) for r in out.stdout.strip().splitlines()]
    assert len(rows) == 7 and all(abs(sum(r) - 1) < 1e-4 and len(r) == 10 for r in rows)
    out = fastmlp("predict", "m.npz", "x.npy", "--output", "p.npy", cwd=tmp_path)
    assert out.returncode == 0 and np.load(tmp_path / "p.npy").shape == (25,)
    # an IDX image file (8x8 digits as uint8 images)
    imgs = Xt[:5].reshape(5, 8, 8).astype(np.uint8)
    header = bytes([0, 0, 0x08, 3]) + b"".join(int(d).to_bytes(4, "big") for d in imgs.shape)
    (tmp_path / "imgs-idx3-ubyte").write_bytes(header + imgs.tobytes())
    out = fastmlp("predict", "m.npz", "imgs-idx3-ubyte", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.split()) == 5


def test_info(tmp_path):
    out = fastmlp("info", cwd=tmp_path)
    assert out.returncode == 0
    assert "compiled kernels: yes" in out.stdout and "CPU:" in out.stdout
    assert "openblas" in out.stdout.lower()


@pytest.mark.parametrize("args,needle", [
    (["train", "--dataset", "missing.npz"], "missing.npz"),
    (["train", "--dataset", "digits", "--epochs", "0"], "epochs must be >= 1"),
    (["train", "--dataset", "digits", "--l2", "-1"], "l2"),
    (["predict", "absent.npz", "x.npy"], "absent.npz"),
    (["predict", "bad.npz", "x.npy"], "bad.npz"),
])
def test_user_errors_are_one_line_with_status_2(tmp_path, args, needle):
    (tmp_path / "bad.npz").write_bytes(b"not a model")
    np.save(tmp_path / "x.npy", np.zeros((2, 64)))
    out = fastmlp(*args, cwd=tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0 and needle in out.stderr


def test_bad_option_syntax_is_refused_without_traceback(tmp_path):
    out = fastmlp("train", "--epochs", "many", cwd=tmp_path)
    assert out.returncode == 2 and "invalid int value" in out.stderr
    assert "Traceback" not in out.stderr


def test_progress_bar_draws_in_place_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    p = Progress(epochs=2, stream=out)
    for b in range(4):
        p(0, b, 4, 10.0 - b)
    p(0, None, 4, dict(cost=8.5, reg_share=0.1, train_acc=0.5, learning_rate=0.01,
                       epoch_time=0.2))
    text = out.getvalue()
    assert text.count("\r") >= 2 and "4/4 batches" in text and "#" * 25 in text
    assert text.endswith("\n") and "epoch   1/2" in text


def test_bench_subcommand_runs_the_suite(tmp_path):
    out = fastmlp("bench", "--epochs", "1", "--repeats", "1", "--batch-sizes", "30000",
                  "--rows", "fastmlp,numpy", "--json", "b.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "fastmlp is" in out.stdout
    assert len(json.loads((tmp_path / "b.json").read_text())["results"]) == 2
    help_text = fastmlp("bench", "--help", cwd=tmp_path).stdout
    assert "--batch-sizes" in help_text and "--cnn" in help_text


def test_train_with_adam_saves_its_state(tmp_path):
    out = fastmlp("train", "--dataset", "digits", "--epochs", "10", "--batch-size", "64",
                  "--learning-rate", "0.01", "--hidden", "20", "--optimizer", "adam",
                  "--output", "m.npz", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    acc = next(float(line.split()[-1]) for line in out.stdout.splitlines()
               if line.startswith("test accuracy"))
    assert acc > 0.8
    import fastmlp as fm
    m = fm.load(tmp_path / "m.npz")
    assert m.optimizer == "adam" and m.optimizer_steps_ == 10 * 23


def test_divergence_is_one_line_status_2_and_the_model_so_far_is_saved(tmp_path):
    out = digits_train(tmp_path, "--optimizer", "sgd", "--learning-rate", "1e6",
                       "--momentum", "0.9", "--activation", "relu", "--output", "m.npz")
    assert out.returncode == 2
    assert "training diverged in epoch" in out.stderr and "Traceback" not in out.stderr
    assert "the model so far was written to m.npz" in out.stderr
    import fastmlp as fm
    m = fm.load(tmp_path / "m.npz")                  # finite, loadable
    assert m.optimizer_steps_ > 0


def test_a_closed_pipe_ends_quietly_with_the_sigpipe_status(tmp_path):
    """``fastmlp info | head -3``: the reader leaves; no traceback, status 141."""
    import os
    r, w = os.pipe()
    os.close(r)                       # every write to w now fails with EPIPE
    try:
        run = subprocess.run([sys.executable, "-m", "fastmlp", "info"], stdout=w,
                             stderr=subprocess.PIPE, text=True, timeout=120, cwd=tmp_path)
    finally:
        os.close(w)
    assert run.returncode == 141 and run.stderr == "", run.stderr


BLOCK_MATPLOTLIB = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib' (blocked by the test)")
sys.meta_path.insert(0, Block())
from fastmlp.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def test_plot_without_matplotlib_is_refused_before_training(tmp_path):
    run = subprocess.run([sys.executable, "-c", BLOCK_MATPLOTLIB, "train", "--dataset",
                          "digits", "--epochs", "2", "--plot", "p.png", "--output", "m.npz"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 2
    assert "epoch " not in run.stdout                   # refused before the first epoch
    assert run.stderr.count("\n") == 1 and "--plot needs matplotlib" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "m.npz").exists()


def test_train_regressor_from_an_npz_with_continuous_targets(tmp_path):
    from sklearn.datasets import make_friedman1
    X, y = make_friedman1(n_samples=600, random_state=0)
    np.savez(tmp_path / "f.npz", X=X, y=y)
    out = fastmlp("train", "--dataset", "f.npz", "--output", "r.npz", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "MLPRegressor, preset defaults" in out.stdout
    r2 = next(float(line.split()[-1]) for line in out.stdout.splitlines()
              if line.startswith("test R2"))
    assert r2 > 0.5
    import fastmlp as fm
    assert isinstance(fm.load(tmp_path / "r.npz"), fm.MLPRegressor)
    np.save(tmp_path / "x.npy", X[:4])
    pred = fastmlp("predict", "r.npz", "x.npy", cwd=tmp_path)
    assert pred.returncode == 0 and len(pred.stdout.split()) == 4
    proba = fastmlp("predict", "r.npz", "x.npy", "--proba", cwd=tmp_path)
    assert proba.returncode == 2 and "holds a regressor" in proba.stderr
    refused = fastmlp("train", "--dataset", "f.npz", "--preset", "blog", cwd=tmp_path)
    assert refused.returncode == 2 and "--preset blog" in refused.stderr


def test_train_presets_early_stopping_and_save_best(tmp_path):
    # on digits the estimator's defaults apply, on MNIST the blog experiment
    out = fastmlp("train", "--dataset", "digits", "--early-stopping", "--save-best",
                  "best.npz", "--output", "m.npz", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "MLPClassifier, preset defaults" in out.stdout
    epochs = [line for line in out.stdout.splitlines() if line.startswith("epoch ")]
    assert all("val acc" in e and "test acc" not in e for e in epochs)  # held out, not test
    assert "kept the model of epoch" in out.stdout
    acc = next(float(line.split()[-1]) for line in out.stdout.splitlines()
               if line.startswith("test accuracy"))
    assert acc > 0.9
    import fastmlp as fm
    best, final = fm.load(tmp_path / "best.npz"), fm.load(tmp_path / "m.npz")
    for a, b in zip(best.coefs_, final.coefs_):       # the best epoch's model, both ways
        np.testing.assert_array_equal(a, b)
    blog_run = fastmlp("train", "--epochs", "1", "--quiet", cwd=tmp_path)
    assert "preset blog" in blog_run.stdout and "layers 784-70-30-10" in blog_run.stdout


def test_info_shows_the_limits_measured_on_this_cpu_only(tmp_path):
    import json
    import os

    from fastmlp._platform import cpu_name
    home = tmp_path / "home"
    (home / ".cache" / "fastmlp").mkdir(parents=True)
    env = dict(os.environ, HOME=str(home))
    run = fastmlp("info", cwd=tmp_path, env=env)
    assert run.returncode == 0 and "measured peaks: none for this CPU" in run.stdout
    figures = dict(cores=os.cpu_count(), gemm_gflops_1_thread=123.4,
                   gemm_gflops_all_threads=234.5, add_gbs=45.6, measured="2026-01-02 03:04:05")
    path = home / ".cache" / "fastmlp" / "machine.json"
    path.write_text(json.dumps(dict(figures, cpu=cpu_name())))
    run = fastmlp("info", cwd=tmp_path, env=env)
    assert "GEMM peak 123 GFLOP/s on 1 thread, 234 on" in run.stdout, run.stdout
    assert "memory 45.6 GB/s" in run.stdout
    path.write_text(json.dumps(dict(figures, cpu="another CPU")))
    assert "none for this CPU" in fastmlp("info", cwd=tmp_path, env=env).stdout
    path.write_text("{not json")
    run = fastmlp("info", cwd=tmp_path, env=env)
    assert run.returncode == 0 and "none for this CPU" in run.stdout
