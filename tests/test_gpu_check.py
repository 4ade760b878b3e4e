"""bench/gpu_check.sh on a machine without a GPU: says so and exits 0 (CI runs here)."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import ROOT


def test_gpu_check_says_no_gpu_and_exits_0_without_one():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: run bench/gpu_check.sh itself")
    proc = subprocess.run(["bash", "bench/gpu_check.sh"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("no GPU"), proc.stdout + proc.stderr
