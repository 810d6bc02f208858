"""Running a submission's cells in a real (small) kernel: time limits, restarts and replays, the
total budget, and the calls from the checks, in seconds rather than through the whole bank.

The cells here import nothing heavy, so each kernel starts in about a second; the rules they
exercise are the ones every graded notebook goes through (mnist_grader.session)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest

from mnist_grader import MASTER_DIR, engine, remote, sandbox, wire
from mnist_grader import phases as phases_module
from mnist_grader import session as sess

pytestmark = pytest.mark.skipif(not sandbox.is_root(), reason="the sandbox's uids need root")


@pytest.fixture
def run(data_file):
    """run(cells, **limits) -> the session's log, after the cells ran in a sandboxed kernel."""

    def run_cells(sources: list[str], total_seconds: float = 120, **limits):
        settings = engine.Settings(
            checks_dir=MASTER_DIR,
            data_file=data_file,
            **{"cell_seconds": 4, "check_seconds": 4, **limits},
        )
        cells = list(enumerate(sources, start=1))
        with (
            sandbox.lease_slots(1) as slots,
            tempfile.TemporaryDirectory(prefix="mnist-test-", dir=sandbox.work_root()) as tmp,
        ):
            uid = sandbox.slot_uid(slots[0])
            workdir = engine._prepare_sandbox(Path(tmp))
            deadline = time.monotonic() + total_seconds
            module = MASTER_DIR / "mnist_exercise.py"
            with sess.KernelSession(workdir, module, uid, settings, deadline, {}) as session:
                session.run_cells(cells)
                calls = remote.RemoteCalls(session)
                calls.load_probe()
                answers = {}
                if not session.log.kernel_lost:
                    kinds = calls.kinds(["f", "x", "nothing"])
                    x = calls.fetch("x") if kinds["x"] == "value" else None
                    answers = {"kinds": kinds, "x": x}
                    if kinds["f"] == "function":
                        answers["f(2)"] = calls.call("f", (2,))
            sandbox.sweep(uid)
            return session.log, answers

    return run_cells


def statuses(log) -> list[str]:
    return [cell.status for cell in log.cells]


def test_a_cell_over_its_limit_is_interrupted_and_the_rest_run(run):
    log, answers = run(["x = 1", "while True: pass", "x = x + 1\ndef f(n):\n    return n * x"])
    assert statuses(log) == ["ok", "timeout", "ok"]
    assert log.status == "graded" and answers["x"] == 2 and answers["f(2)"] == 4
    assert log.problems() == ["the cell `while True: pass` (cell 2 from the top): timeout: "
                              "did not finish within 4 s"]  # fmt: skip


def test_a_cell_that_kills_the_kernel_is_skipped_and_the_cells_before_replayed(run):
    log, answers = run(["x = 41", "import os\nos._exit(0)", "x += 1"])
    assert statuses(log) == ["ok", "kernel died", "ok"]
    assert log.status == "graded" and answers["x"] == 42  # x = 41 ran again in the new kernel
    assert "it was skipped" in log.cells[1].detail


def test_a_cell_that_ignores_interrupts_gets_the_kernel_replaced(run):
    ignore = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass"
    log, answers = run(["x = 1", ignore, "x = 5"])
    assert statuses(log)[0] == "ok" and statuses(log)[2] == "ok"
    assert log.status == "graded" and answers["x"] == 5


def test_when_restarts_run_out_the_rest_is_not_run(run):
    exit_cell = "import os\nos._exit(0)"
    log, answers = run(["x = 1", exit_cell, exit_cell, exit_cell, "x = 2"])
    assert log.status == "kernel died" and statuses(log)[-1] == "not run"
    assert answers == {}  # nothing to call: every check says the kernel was lost


def test_the_total_budget_stops_grading(run):
    log, _ = run(["x = 1", "while True: pass", "while True: pass", "x = 2"], total_seconds=6)
    assert log.status == "out of time"
    assert "total time limit" in log.kernel_lost


def test_the_kernel_keeps_no_input_history(run):
    """IPython would write every cell, the grader's calls included, to a SQLite file."""
    log, answers = run(["x = get_ipython().history_manager.enabled"])
    assert answers["x"] is False


def test_an_error_keeps_its_cause(run):
    log, _ = run(["raise ValueError('first line\\n\\nthe line that says why')"])
    assert log.cells[0].detail == "ValueError: first line the line that says why"


def test_calls_that_raise_come_back_as_student_errors(data_file):
    """The same through the session's call, which the checks use."""
    settings = engine.Settings(checks_dir=MASTER_DIR, data_file=data_file, check_seconds=4)
    with (
        sandbox.lease_slots(1) as slots,
        tempfile.TemporaryDirectory(prefix="mnist-test-", dir=sandbox.work_root()) as tmp,
    ):
        uid = sandbox.slot_uid(slots[0])
        workdir = engine._prepare_sandbox(Path(tmp))
        module = MASTER_DIR / "mnist_exercise.py"
        deadline = time.monotonic() + 60
        with sess.KernelSession(workdir, module, uid, settings, deadline, {}) as session:
            session.run_cells(
                [(1, "def f(n):\n    raise KeyError(n)\ndef g(n):\n    while 1: pass")]
            )
            calls = remote.RemoteCalls(session)
            calls.load_probe()
            with pytest.raises(wire.StudentError, match="KeyError: 2"):
                calls.call("f", (2,))
            with pytest.raises(remote.CallTimedOut):
                calls.call("g", (1,))
            with pytest.raises(remote.CallTimedOut, match="earlier check"):
                calls.call("g", (1,))  # not run twice
        sandbox.sweep(uid)


def test_a_grading_log_for_the_instructor_and_debug_keeps_the_sandbox(dist, data_file, tmp_path):
    """OUT/<submission>/grader.log has the cells' timings and the kernel's exit, never reaches the
    feedback; --debug keeps a copy of the sandbox's folder and names it there."""
    import json
    import re
    import shutil
    import subprocess
    import sys

    import nbformat

    notebook = tmp_path / "tiny.ipynb"
    busy = "total = sum(i * i for i in range(4_000_000))"  # CPU in the kernel, not the grader
    cells = [nbformat.v4.new_code_cell(source) for source in ("x = 1", "1 / 0", busy)]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), notebook)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "mnist_grader", "grade", str(notebook), "--out", str(out)]
    command += ["--checks-dir", str(dist / "autograder"), "--data-file", str(data_file)]
    subprocess.run([*command, "--debug"], check=True, capture_output=True)
    log = (out / "tiny" / "grader.log").read_text()
    assert "kernel started as uid" in log and "kernel stopped" in log
    assert re.search(r"the cell `1 / 0` \(cell 2 from the top\): error in [\d.]+ s", log)
    # Each phase with the grader's CPU, the kernel's and the wall time (make bench's table)
    phases = {m["phase"]: m for m in map(phases_module.LINE.search, log.splitlines()) if m}
    for phase in ("grader start and imports", "data and checks", "kernel start", "checks of q6"):
        assert phase in phases
    busy_cell = next(m for phase, m in phases.items() if "(cell 3 from the top)" in phase)
    assert float(busy_cell["kernel"]) > 0.1 > float(busy_cell["grader"])
    total = next(m for m in map(phases_module.TOTAL.search, log.splitlines()) if m)
    assert float(total["children"]) >= float(busy_cell["kernel"])  # the kernel, reaped
    # ...and not counted again among the other children when it is stopped and reaped
    assert float(phases["kernel stop and clean-up"]["others"]) < float(busy_cell["kernel"])
    kept = Path(re.search(r"kept in (\S+)", log).group(1))
    try:
        assert (kept / "kernels").is_dir() and list((kept / "out").glob("*.json"))
    finally:
        shutil.rmtree(kept)
    results = (out / "tiny" / "results.json").read_text()
    assert "kernel started" not in results and json.loads(results)["stdout_visibility"] == "hidden"


CPU_GROUP_CELL = """
import os, subprocess
def group(text):
    for line in text.splitlines():
        number, controllers, path = line.split(":", 2)
        if {version} == 1 and "cpu" in controllers.split(",") or ({version}, number) == (2, "0"):
            return path
own = group(open("/proc/self/cgroup").read())
new_session = subprocess.run(["setsid", "-w", "cat", "/proc/self/cgroup"], capture_output=True,
                             text=True).stdout
try:  # back to the grader's group
    with open({mount!r} + os.path.dirname(own) + "/cgroup.procs", "w") as f:
        f.write(str(os.getpid()))
    left = "left"
except OSError:
    left = "refused"
x = [own, group(new_session), open({mount!r} + own + "/{weight_file}").read().strip(), left]
"""


def test_a_kernel_and_its_new_sessions_share_one_cpu_group(run):
    """The kernel, and a process of it in a session of its own, are in the CPU group of its uid
    with every kernel's weight (so four busy sessions no longer take four shares of the CPU
    against a classmate's one), and the kernel cannot leave it."""
    from mnist_grader import launcher

    hierarchy = launcher._cpu_hierarchy()
    if hierarchy is None:
        pytest.skip("this machine has no cgroup cpu controller")
    version, mount = hierarchy
    weight_file, weight = launcher.CPU_WEIGHT[version]
    cell = CPU_GROUP_CELL.format(version=version, mount=str(mount), weight_file=weight_file)
    log, answers = run([cell])
    assert statuses(log) == ["ok"], log.problems()
    own, new_session, got_weight, left = answers["x"]
    uid = own.rpartition("/")[2].removeprefix(launcher.CPU_GROUP)
    assert uid.isdigit() and int(uid) in sandbox.SANDBOX_UIDS, own
    assert (new_session, got_weight, left) == (own, weight, "refused")


def test_a_cold_kernel_gets_the_prepared_font_list_and_keeps_it(run):
    """matplotlib reads the list the launcher copied in (mnist_grader.fontcache) instead of
    listing the machine's fonts again: a list it made itself would have replaced the file."""
    find = "sorted(glob.glob(os.environ['MPLCONFIGDIR'] + '/fontlist-v*.json'))"
    log, answers = run(
        [
            f"import glob, os\nbefore = [(p, os.stat(p).st_mtime_ns) for p in {find}]",
            "import matplotlib.font_manager\n"
            f"after = [(p, os.stat(p).st_mtime_ns) for p in {find}]\n"
            "x = [len(before), before == after]",
        ]
    )
    assert statuses(log) == ["ok", "ok"] and answers["x"] == [1, True]
