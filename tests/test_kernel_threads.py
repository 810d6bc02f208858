"""TensorFlow's threads in a kernel (mnist_grader.batch.kernel_thread_count): one per kernel
side by side, and alone as many as a CPU quota allows (Gradescope's container limit), read from
the process's real CPU groups. What it saves: make bench (tests/bench_quota.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mnist_grader import batch
from mnist_grader.batch import PACKAGE_ROOT
from tests.bench_quota import quota_group

REPORT = """
import json, os
from mnist_grader import batch, launcher
os.environ["TF_NUM_INTEROP_THREADS"] = "7"  # an instructor's own setting
env = batch._kernel_threads(1)
print(json.dumps([launcher.cpu_quota(), batch.kernel_thread_count(1), batch.kernel_thread_count(3),
                  env.get("TF_NUM_INTRAOP_THREADS"), env["TF_NUM_INTEROP_THREADS"]]))
"""


def _inside(group) -> list:
    output = subprocess.run(
        group.joined([sys.executable, "-c", REPORT]),
        env={**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output)


@pytest.mark.parametrize(
    "quota, threads",
    [(0.5, 1), (1.5, 1), (len(os.sched_getaffinity(0)), None)],
    ids=["half a CPU", "one and a half", "every CPU"],
)
def test_a_kernel_graded_alone_gets_the_threads_its_quota_allows(quota, threads):
    with quota_group(quota, f"mnist-test-quota-{os.getpid()}") as group:
        if group is None:
            pytest.skip("no CPU group can be made here (root and a cpu controller needed)")
        seen, alone, side_by_side, intra, inter = _inside(group)
    assert seen == pytest.approx(quota) and alone == threads and side_by_side == 1
    assert intra == (None if threads is None else str(threads))
    assert inter == "7"  # what the instructor set stays


def test_kernels_side_by_side_get_one_thread_each():
    assert batch.kernel_thread_count(2) == 1
    assert batch._kernel_threads(2)["OMP_NUM_THREADS"] == os.environ.get("OMP_NUM_THREADS", "1")
