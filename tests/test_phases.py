"""The phase clock's start (mnist_grader.phases): a process's first phase, its start and
imports, is timed from when the process really started. The phases of real graded submissions:
tests/test_session.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from mnist_grader.batch import PACKAGE_ROOT

AGE = "from mnist_grader.phases import seconds_since_start; print(seconds_since_start())"


def test_a_process_knows_how_long_ago_it_started():
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)}
    before = time.monotonic()
    output = subprocess.run([sys.executable, "-c", AGE], env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - before
    age = float(output.stdout)
    # The kernel counts a process's start in ticks of 1/SC_CLK_TCK s: one tick of slack. (The
    # boot time in whole seconds, which psutil's create_time adds, made it up to 1 s more.)
    assert 0 < age <= elapsed + 1 / os.sysconf("SC_CLK_TCK")
