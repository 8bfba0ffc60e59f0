"""The seed network on the real MNIST: 35 epochs at batch 500 (about 10 s)."""

import subprocess
import sys

import numpy as np
import pytest

from fastmlp import MLPClassifier
from fastmlp.datasets import load_mnist


@pytest.mark.slow
def test_seed_network_reaches_096_on_mnist():
    (X, y), (Xt, yt) = load_mnist()
    m = MLPClassifier(random_state=0, n_threads=1)
    assert (m.hidden_layer_sizes, m.epochs, m.batch_size) == ((70, 30), 35, 500)
    m.fit(X, y)
    acc = m.score(Xt, yt)
    assert acc >= 0.96, acc
    assert m.layers_ == (784, 70, 30, 10)
    assert m.learning_rate_ == 0.0009994051838157095
    # the batch-averaged training accuracy sits above the test accuracy
    assert m.history_.train_acc[-1] > acc
    assert np.all(np.diff(m.history_.cost[:10]) < 0)


def test_cli_trains_and_reports(tmp_path):
    out = subprocess.run([sys.executable, "-m", "fastmlp", "train", "--dataset", "digits",
                          "--epochs", "3", "--batch-size", "64", "--learning-rate", "0.05",
                          "--hidden", "20,12"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "epoch    3" in out.stdout
    assert "test accuracy 0." in out.stdout


def test_cli_user_error_is_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "fastmlp", "train", "--dataset",
                          str(tmp_path / "missing.npz")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0 and "missing.npz" in out.stderr
