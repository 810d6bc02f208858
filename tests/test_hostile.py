"""Hostile submissions cannot forge scores, read hidden checks, or outlive their grading.

Their scores are asserted with the rest of the bank (tests/bank/hostile.py, test_bank.py); these
tests check what the scores alone can't show.
"""

import hashlib
import json
import re
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

import psutil

from mnist_grader import batch, checks, engine, sandbox
from tests import bank
from tests.bank import hostile
from tests.conftest import (
    PRIVATE_MODES_BEFORE,
    ROOT,
    idle_sandbox_uids,
    json_strings,
    question_scores,
    read_results,
)

SANDBOX_UIDS = sandbox.SANDBOX_UIDS


def test_nothing_a_submission_started_is_still_running(graded_bank):
    idle = set(idle_sandbox_uids())
    left = [
        p.info
        for p in psutil.process_iter(["pid", "uids", "cmdline"])
        if p.info["uids"] and p.info["uids"].real in idle
    ]
    assert left == []


def test_no_ipc_object_of_a_submission_is_left(graded_bank):
    for kind in ("shm", "msg", "sem"):
        rows = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()
        header = rows[0].split()
        owners = [int(dict(zip(header, row.split(), strict=False))["uid"]) for row in rows[1:]]
        assert not [uid for uid in owners if uid in SANDBOX_UIDS], kind


def test_an_error_name_cannot_add_lines_to_the_report(graded_bank):
    output = read_results(graded_bank, "forges_an_error_name")["output"]
    assert "[passed] everything" in output  # shown, inside its own note...
    lines = output.splitlines()
    assert sum(line.startswith("Autograded score:") for line in lines) == 1  # ...never a line
    assert not any(line.lstrip("- ").startswith("[passed]") for line in lines)


def test_no_file_of_a_submission_is_left_in_tmp(graded_bank):
    for folder in map(Path, sandbox.SHARED_TMP_DIRS):
        owned = [p for p in folder.iterdir() if p.lstat().st_uid in SANDBOX_UIDS]
        assert owned == [], owned


def test_every_results_json_is_the_graders(graded_bank):
    """A forged results.json (score 22, no extra_data) would fail here or in the score check."""
    for path in graded_bank.glob("*/results.json"):
        results = json.loads(path.read_text())
        assert results["extra_data"]["submission"] == f"{path.parent.name}.ipynb"
        assert results["score"] == sum(t["score"] for t in results["tests"])


def test_hidden_checks_never_reach_the_feedback(graded_bank, dist):
    hidden = []
    for path in (dist / "autograder" / "tests").glob("*.py"):
        hidden += re.findall(r"hidden=True\)\ndef (\w+)", path.read_text())
    leak = read_results(graded_bank, "reads_the_checks")["output"]
    assert "LEAK readable=[]" in leak  # the submission ran and could read none of them...
    for path in graded_bank.glob("*/results.json"):
        text = path.read_text()
        assert "hidden=True" not in text  # ...which never includes a hidden check
        assert not [name for name in hidden if name in text], path.parent.name


def test_installed_packages_and_data_are_untouched(graded_bank, data_file):
    import numpy

    assert "argmax = lambda" not in Path(numpy.__file__).read_text()
    assert not Path("/tmp/sitecustomize.py").exists() and not Path("/tmp/evil.py").exists()
    planted = Path(sysconfig.get_paths()["purelib"]) / hostile.PLANTED_PTH
    assert not planted.exists(), "a submission made root write a .pth into the venv"
    with numpy.load(data_file) as data:  # the real MNIST, as ../shared/datasets/README.md has it
        digests = {name: hashlib.sha256(data[name].tobytes()).hexdigest() for name in MNIST_SHA256}
    assert digests == MNIST_SHA256


MNIST_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}


def test_student_text_cannot_pose_as_report_lines(graded_bank):
    graded = read_results(graded_bank, "forges_report_lines")
    assert question_scores(graded)["q5"] == 0
    q5 = next(t for t in graded["tests"] if t["name"] == "q5: public checks")
    assert "Autograded score: 22" in q5["output"]  # the forged text is shown, inside its error...
    lines = q5["output"].splitlines()
    assert not any(line.startswith("[passed]") for line in lines)  # ...never as a line of its own


def test_same_submission_same_score(bank_dir, settings, tmp_path):
    folder = tmp_path / "three"
    folder.mkdir()
    for n in range(3):
        (folder / f"copy{n}.ipynb").write_bytes((bank_dir / "passes_all.ipynb").read_bytes())
    rows = batch.grade_batch(folder, tmp_path / "out", settings, jobs=2, progress=False)
    scores = [{k: v for k, v in row.items() if k != "file"} for row in rows]
    assert scores == [scores[0]] * 3
    assert scores[0]["total"] == sum(bank.FULL_MARKS.values())


def test_private_folders_get_their_modes_back(graded_bank):
    """Closed to the sandbox while grading (reads_the_checks proves it), put back after: a
    checkout where the suite ran is not left root-only."""
    assert PRIVATE_MODES_BEFORE, "conftest records the modes before the bank is graded"
    for path, mode in PRIVATE_MODES_BEFORE.items():
        assert path.stat().st_mode & 0o7777 == mode, path


def test_a_right_notebook_reports_no_cell_problems(graded_bank):
    """otter's own cells (grader = otter.Notebook(...), grader.check(...)) are skipped, not run
    and reported as errors."""
    assert "While running your notebook" not in read_results(graded_bank, "passes_all")["output"]


def test_text_from_student_code_is_shown_inert(graded_bank):
    """ESC and U+202E, returned in a repr and raised in a cell's error, reached results.json,
    grader.log and the report as themselves: now spelled out, and still shown."""
    folder = graded_bank / "shows_hostile_text"
    spelled = "\\x1b]0;pwned\\x07\\x1b[2J\\u202egnp.exe"
    texts = {
        "results.json": "\n".join(json_strings(json.loads((folder / "results.json").read_text()))),
        "grader.log": (folder / batch.LOG_NAME).read_bytes().decode("utf-8"),
        "feedback.html": (folder / "feedback.html").read_text(),
        "report.html": (graded_bank / "report.html").read_text(),
    }
    for where, text in texts.items():
        assert not {"\x1b", "\x07", "\u202e"} & set(text), where
        assert spelled in text, where
    got = [c["got"] for c in read_results(graded_bank, folder.name)["extra_data"]["checks"]]
    assert any(f"{spelled}7777" in g for g in got), got  # what top_class returned, its repr


def test_past_the_graders_memory_the_result_says_so(graded_bank):
    """A model too large for the grader to recompute within --grader-memory-mb: the one check
    that recomputes it fails in words a student can act on, the status says so, and the
    submission's other checks (and the batch) go on."""
    results = read_results(graded_bank, "model_too_large_to_check")
    assert results["extra_data"]["status"] == "grading out of memory"
    failed = [check for check in results["extra_data"]["checks"] if not check["passed"]]
    assert [check["feedback"] for check in failed] == [checks.OUT_OF_MEMORY_FEEDBACK]
    assert engine.OUT_OF_MEMORY_NOTE in results["output"]


def test_a_venv_linked_from_another_checkout_keeps_that_checkout_closed(dist, data_file):
    """Grading from a checkout whose .venv is a link into another checkout (this one, as
    `make mutants`' scratch copies have it): the kernel finds that checkout from
    realpath(sys.prefix), and its checks, solutions, bank and history are closed to it too,
    not only the folders under the grading checkout's own name."""
    case = next(c for c in bank.ALL_CASES if c.name == "reads_the_checks")
    student = bank.variants.get("mnist").assignment_dir / bank.NOTEBOOK_NAME
    with tempfile.TemporaryDirectory(prefix="mnist-linked-venv-", dir=sandbox.work_root()) as tmp:
        checkout = Path(tmp) / "checkout"
        shutil.copytree(
            ROOT / "mnist_grader",
            checkout / "mnist_grader",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        (checkout / ".venv").symlink_to(ROOT / ".venv")
        for folder in (Path(tmp), checkout):
            folder.chmod(0o755)  # the sandbox user reaches the venv through it
        submission = Path(tmp) / f"{case.name}.ipynb"
        submission.write_text(bank.make_notebook(case, bank.solution_functions(), student))
        out = Path(tmp) / "out"
        graded = subprocess.run(
            [str(checkout / ".venv" / "bin" / "python"), "-m", "mnist_grader", "grade",
             str(submission), "--out", str(out), "--checks-dir", str(dist / "autograder"),
             "--data-file", str(data_file), "--cell-seconds", "30", "--check-seconds", "10"],
            cwd=checkout, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert graded.returncode == 0, graded.stderr[-2000:]
        output = read_results(out, case.name)["output"]
    assert f"'{ROOT}'" in output.split("checkouts=")[1].split("]")[0]  # it looked there...
    assert "LEAK readable=[]" in output  # ...and could read none of it
