"""Every command and code example in README.md runs, as a new user would run it.

The ``sh`` blocks' ``fastmlp ...`` lines run in a subprocess, in order, in one
folder (a later ``predict`` reads the model an earlier ``train`` wrote), with
short runs: a training command gets at most 2 epochs, the benchmark suite and
the study their smallest settings.  Each must end with status 0 and no
traceback, and a training command must report its test score.  The
``python`` blocks run, in order, as one script.  The set-up commands of
"Set-up on a fresh machine" are not run here: CI runs them.
"""

import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def blocks(language):
    """The fenced code blocks of ``language`` in README.md, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), re.M | re.S)


def commands():
    """The README's ``fastmlp`` command lines, comments removed."""
    lines = []
    for block in blocks("sh"):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("fastmlp "):
                lines.append(line)
    return lines


def shortened(line):
    """The command, cut to a short run where it trains."""
    args = line.split()[1:]
    if args[0] == "train":
        if "--epochs" in args:
            i = args.index("--epochs") + 1
            args[i] = str(min(int(args[i]), 2))
        else:
            args += ["--epochs", "2"]
    elif args[0] == "bench":
        args += ["--epochs", "1", "--repeats", "1", "--batch-sizes", "500",
                 "--rows", "fastmlp,numpy"]
    elif args[0] == "study":
        args += ["--epochs", "2", "--lambdas", "0.01", "--processes", "1"]
    return args


def test_the_readme_shows_commands_and_code():
    cmds = commands()
    assert cmds[0] == "fastmlp train" and any(c.startswith("fastmlp predict") for c in cmds)
    assert len(blocks("python")) >= 3


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path):
    from fastmlp.datasets import load_mnist
    _, (Xt, _) = load_mnist()
    np.save(tmp_path / "images.npy", Xt[:100])          # for `fastmlp predict ... images.npy`
    for line in commands():
        args = shortened(line)
        run = subprocess.run([sys.executable, "-m", "fastmlp", *args], capture_output=True,
                             text=True, timeout=600, cwd=tmp_path)
        assert run.returncode == 0, f"{line}\n{run.stderr[-2000:]}"
        assert "Traceback" not in run.stderr, line
        if args[0] == "train":
            assert re.search(r"^test (accuracy|R2) ", run.stdout, re.M), (line, run.stdout)


@pytest.mark.slow
def test_the_readme_python_examples_run(tmp_path):
    script = "\n".join(blocks("python"))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=900, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "model.npz").exists() and (tmp_path / "train.png").exists()
