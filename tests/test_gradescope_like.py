"""`make gradescope-check`: the zip graded as Gradescope runs it (tests/gradescope_like.py):
installed by its own setup.sh on Python 3.10, run_autograder under Docker's default
capabilities, on one CPU, in 768 MB, on a small disk of its own. The reference, the starter and
the hostile submissions that exercise the sandbox's fallbacks (no mount or IPC namespaces) get
their scores, and nothing of theirs is left: no process, no file, no System V IPC object."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psutil
import pytest

from mnist_grader import package, phases, results, sandbox
from tests import bank, bench_cold
from tests import gradescope_like as gs
from tests.bank import hostile
from tests.conftest import idle_sandbox_uids, question_maxima, question_scores, require

MEMORY_MB = 768  # Gradescope's default
DISK_MB = 512  # the container's writable disk: room for grading, and little more
# The bank tests' short limits.
LIMITS = ["--cell-seconds", "30", "--check-seconds", "10", "--total-seconds", "240"]
SANDBOX_UIDS = sandbox.SANDBOX_UIDS

# Many small files rather than a few large ones: the per-file size limit does not bound them.
SMALL_FILES = bank.Case(
    "fills_the_disk_with_small_files",
    "starter + 64 KB files into /tmp, /var/tmp and its own folder until the disk is full",
    starter=True,
    scores=hostile.ZERO,
    cells=[
        """
import os
import subprocess
for folder in ("/tmp", "/var/tmp", "."):
    try:
        os.makedirs(os.path.join(folder, "many"), exist_ok=True)
        for n in range(200000):
            with open(os.path.join(folder, "many", str(n)), "wb") as handle:
                handle.write(b"x" * 65536)
    except OSError as error:
        stopped = error
raise RuntimeError(f"stopped by {stopped}")  # the report shows that the disk was full
"""
    ],
)
CASE_NAMES = [
    "passes_all",
    "untouched_starter",
    "writes_results_json",
    "fills_the_disk",
    "copies_a_classmate",
    "plants_links_then_restarts",
    "leaves_ipc_and_lock_files",
    "memory_bomb",
    "hangs_ignoring_interrupts",
    "leaves_a_deep_folder",
]
CASES = [next(c for c in bank.ALL_CASES if c.name == name) for name in CASE_NAMES]
CASES.append(SMALL_FILES)


@pytest.fixture(scope="module")
def gradescope(dist, data_file, tmp_path_factory):
    """An unpacked zip, installed by its setup.sh on Python 3.10, with a small disk."""
    missing = gs.missing_tools()
    require(
        not missing,
        "Gradescope's environment cannot be rebuilt here: missing " + ", ".join(missing),
    )
    built = package.build_zip(
        data_file, dist / "autograder", tmp_path_factory.mktemp("zip") / "autograder.zip"
    )
    with gs.installed(built) as root, gs.check_folder() as folder, gs.Disk(folder, DISK_MB) as disk:
        yield root, disk


def _notebook(case, folder: Path) -> Path:
    path = folder / "mnist_first_steps.ipynb"
    student = bank.variants.get("mnist").assignment_dir / bank.NOTEBOOK_NAME
    path.write_text(bank.make_notebook(case, bank.solution_functions(), student))
    return path


def test_setup_compiles_the_grader_and_lists_the_fonts(gradescope):
    """Before any submission ran (this test comes first): setup.sh's bytecode and matplotlib's
    font list (mnist_grader.fontcache), not a grading process's, which every fresh container
    would make again."""
    root, _ = gradescope
    source = root / "source"
    for module in (source / "mnist_grader" / "engine.py", source / "checks" / "mnist_exercise.py"):
        compiled = module.parent / "__pycache__" / f"{module.stem}.cpython-310.pyc"  # Python 3.10
        assert compiled.is_file(), compiled
    assert list((root / "venv" / "share" / "mnist_grader").glob("matplotlib-3.*/fontlist-v*"))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_graded_as_on_gradescope(gradescope, case):
    root, disk = gradescope
    for old in (root / "submission").iterdir():
        old.unlink()
    _notebook(case, root / "submission")
    disk_before = disk.used_mb()
    cgroup = gs.make_cgroup(f"mnist-gradescope-check-{os.getpid()}", MEMORY_MB)
    try:
        run = gs.run_autograder(root, disk, LIMITS, cgroup, sandbox_uids=SANDBOX_UIDS)
    finally:
        cgroup.remove()
    if cgroup.memory is None:
        print(f"(no memory cgroup could be made here: {MEMORY_MB} MB not enforced)")

    # In Gradescope's conditions: Docker's capabilities, one CPU, the memory cgroup.
    for line in ("Current:", "Bounding set ="):
        shown = run.environment.split(line)[1].split("\n")[0].strip().removesuffix("=ep")
        assert set(shown.split(",")) <= gs.DOCKER_CAPABILITIES, run.environment
    assert "current affinity mask: 1\n" in run.environment
    if cgroup.memory is not None:
        assert cgroup.memory.name in run.environment

    # Its grade, by the grader (a forged results.json would lack extra_data or score otherwise).
    assert run.returncode == 0, run.environment
    graded = json.loads(run.results_text)
    got = question_scores(graded)
    assert got == bank.expected_scores(case), f"{case.name}: {case.why}\n{graded['output']}"
    extra = graded["extra_data"]
    assert (extra["status"], extra["submission"]) == (case.status, bank.NOTEBOOK_NAME)
    marks = [line for t in graded["tests"] for line in t["output"].splitlines() if line[:1] == "["]
    questions = list(dict.fromkeys(c["question"] for c in extra["checks"]))
    # the entries: each question's public checks, then its hidden ones
    checks_in_order = sorted(
        extra["checks"], key=lambda c: (questions.index(c["question"]), c["hidden"])
    )
    assert [c["passed"] for c in checks_in_order] == [m.startswith("[passed]") for m in marks]
    assert question_maxima(graded) == bank.FULL_MARKS
    assert graded["score"] == sum(got.values())
    if case is SMALL_FILES:
        assert "No space left on device" in graded["output"]
    # The grading processes' phases go to run_autograder's output (the instructor's, which make
    # bench reads), never to what the student sees.
    shown = "\n".join([graded["output"], *(t["output"] for t in graded["tests"])])
    assert not [line for line in shown.splitlines() if phases.LINE.search(line)]
    if case.name == "passes_all":
        found = [phase[0] for phase in bench_cold.read_phases(run.output)["phases"]]
        for name in ("run_autograder: start and imports", "grader start and imports"):
            assert name in found, found
        assert "kernel start" in found and "run_autograder: results.json" in found, found
        assert [name for name in found if name.startswith("checks of ")] == [
            f"checks of {question}" for question in bank.FULL_MARKS
        ]

    # Nothing left: files on the disk and in /dev/shm, processes, IPC objects.
    assert run.left_in_tmp == []
    assert disk.files_of(SANDBOX_UIDS) == []
    assert disk.used_mb() - disk_before < 5, "what the submission wrote is still on the disk"
    for uid in idle_sandbox_uids():  # the machine's own /tmp is other runs' business
        processes = [p.pid for p in psutil.process_iter(["uids"]) if p.info["uids"].real == uid]
        assert processes == [] and sandbox.ipc_objects(uid) == [], uid
    assert not list((root / "venv").glob(f"lib/python3*/site-packages/{hostile.PLANTED_PTH}"))


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small disk needs root")
def test_a_reserved_result_is_written_on_a_full_disk(tmp_path):
    """What the Gradescope results.json needs is allocated before student code runs: once the
    disk is full, it is still written, where an unreserved one is not."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], check=True)
    try:
        reserved, unreserved = disk / "a" / "results.json", disk / "b" / "results.json"
        results.reserve(reserved)
        unreserved.parent.mkdir()
        with pytest.raises(OSError), open(disk / "filler", "wb") as filler:
            while True:
                filler.write(b"x" * 65536)
                filler.flush()
        data = {"score": 0, "tests": [], "output": "x" * 200_000}
        with pytest.raises(OSError):
            results.write_json(data, unreserved)
        results.write_json(data, reserved)
        assert json.loads(reserved.read_text()) == data
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)
