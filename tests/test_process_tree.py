"""make bench's count of a command's CPU (tests/process_tree.py): the whole tree, including a
process its parent left behind, which getrusage of the command alone never sees."""

import json
import subprocess
import sys

from mnist_grader import PROJECT_ROOT

# Its child forks a grandchild that burns CPU after the child exited without waiting for it.
LEAVES_A_WORKER = """
import os, time
if os.fork() == 0:
    if os.fork() == 0:
        time.sleep(0.3)
        end = time.process_time() + 0.5
        while time.process_time() < end:
            pass
    os._exit(0)
os.wait()
"""

MEASURE = """
import json, sys
from tests import process_tree
measured = process_tree.measure([sys.executable, "-c", sys.argv[1]], {}, cpu=0)
print(json.dumps(vars(measured)))
"""


def test_the_count_holds_a_process_its_parent_left():
    # In a Python of its own: the test process must not become a subreaper for the others.
    shown = subprocess.run(
        [sys.executable, "-c", MEASURE, LEAVES_A_WORKER],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    measured = json.loads(shown.stdout)
    assert measured["returncode"] == 0
    assert measured["orphans"] == 1
    assert measured["cpu"] >= 0.45  # the worker's half second, though no parent waited for it
    if measured["cgroup_cpu"] is not None:
        assert abs(measured["cgroup_cpu"] - measured["cpu"]) < 0.1
