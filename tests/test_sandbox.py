"""Grading runs at once on one machine never share a sandbox uid (they would kill each other)."""

import subprocess
import sys

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
