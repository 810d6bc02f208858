"""The sandbox: grading runs at once never share a uid (they would kill each other's kernels),
and a kernel's private temporary folders never hide what it runs on."""

import subprocess
import sys
from pathlib import Path

import pytest

from mnist_grader import sandbox

HOLD_ONE = """
from mnist_grader import sandbox
import sys
with sandbox.lease_slots(1) as slots:
    print(slots[0], flush=True)
    sys.stdin.read()  # hold the lease until the test closes our stdin
"""


@pytest.mark.skipif(not sandbox.is_root(), reason="sandbox uids (and leases) need root")
def test_a_second_grading_run_gets_other_slots():
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_ONE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        taken = int(holder.stdout.readline())
        with sandbox.lease_slots(2) as mine:
            assert taken not in mine and len(set(mine)) == 2
    finally:
        holder.stdin.close()
        holder.wait(10)


def test_private_tmp_never_hides_the_venv(tmp_path):
    workdir = tmp_path / "sandbox"
    in_tmp = sandbox.private_mount_targets(workdir, 61000, 16, [Path("/tmp/clone/.venv")])
    assert workdir in in_tmp and Path("/tmp") not in in_tmp and Path("/dev/shm") in in_tmp
    elsewhere = sandbox.private_mount_targets(workdir, 61000, 16, [Path("/opt/venv")])
    assert {Path("/tmp"), Path("/var/tmp"), Path("/dev/shm")} <= set(elsewhere)
