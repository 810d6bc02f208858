"""Shared fixtures: the checks built fresh from the master, and the whole bank graded once.

Grading is the slow part (a real kernel trains a real model per submission), so the bank is graded
in one batch, two at a time, through the same entry point as `make grade`, and every test reads
the results it needs from that one run.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from pathlib import Path

import pytest

from mnist_grader import MASTER_DIR, assign, batch, engine, results, sandbox
from tests import bank

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "datasets" / "mnist.npz"


def require(available: bool, what: str) -> None:
    """Skip a test whose system dependency is missing here; in CI (CI set), fail it instead, so
    that a missing install step can't pass as a skip."""
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI installs it: see .ci/run)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def exercise():
    """The master's support module (mnist_exercise), loaded from its file."""
    return engine.exercise_module(MASTER_DIR)


@pytest.fixture
def master_exercise(exercise, monkeypatch):
    """`import mnist_exercise` (in the wire, the checks) gives the master's, for this test."""
    monkeypatch.setitem(sys.modules, "mnist_exercise", exercise)
    return exercise


@pytest.fixture(scope="session")
def data_file() -> Path:
    named = os.environ.get("MNIST_NPZ")
    path = Path(named) if named else SHARED_DATA
    if not path.is_file():
        pytest.fail(f"MNIST not found at {path}: set MNIST_NPZ (see README)")
    return path


@pytest.fixture(scope="session")
def dist(tmp_path_factory) -> Path:
    """otter assign's output, built now from the master notebook."""
    return assign.run_otter_assign(tmp_path_factory.mktemp("dist") / "dist")


@pytest.fixture(scope="session")
def settings(dist, data_file) -> engine.Settings:
    return engine.Settings(
        checks_dir=dist / "autograder",
        data_file=data_file,
        cell_seconds=30,
        check_seconds=10,
        total_seconds=240,
    )


@pytest.fixture(scope="session")
def bank_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bank")
    # BANK_CASES=a,b grades only those cases (make mutants runs the few a mutation is about)
    only = os.environ.get("BANK_CASES")
    bank.build(folder, only=only.split(",") if only else None)
    return folder


# The modes of the checkout's private folders before the bank was graded (grading closes them
# to the sandbox, then must put them back).
PRIVATE_MODES_BEFORE: dict[Path, int] = {}


@pytest.fixture(scope="session")
def graded_bank(bank_dir, settings, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("grades")
    for name in batch.PRIVATE_FOLDERS:
        if (ROOT / name).is_dir():
            PRIVATE_MODES_BEFORE[ROOT / name] = (ROOT / name).stat().st_mode & 0o7777
    batch.grade_batch(bank_dir, out, settings, jobs=2, progress=False)
    return out


def read_results(out: Path, name: str) -> dict:
    return json.loads((out / name / "results.json").read_text())


def json_strings(data):
    """Every string in JSON data, keys included (what a reader of the file is shown)."""
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield key
            yield from json_strings(value)
    elif isinstance(data, list):
        for item in data:
            yield from json_strings(item)


def question_scores(graded: dict) -> dict[str, float]:
    """Question -> its score in a results.json (its entries' sum, public and hidden checks): the
    tests read scores per question here."""
    return results.question_scores(graded)


def question_maxima(graded: dict) -> dict[str, float]:
    """Question -> its max_score in a results.json."""
    return results.question_scores(graded, "max_score")


def assert_graded_as_expected(out: Path, case) -> None:
    """The bank case's results in `out`: every question's score, the total and the status."""
    results = read_results(out, case.name)
    expected = bank.expected_scores(case)
    assert question_scores(results) == expected, f"{case.name}: {case.why}\n{results['output']}"
    assert question_maxima(results) == bank.FULL_MARKS, f"{case.name}: max_score per question"
    assert results["extra_data"]["status"] == case.status
    assert results["score"] == sum(expected.values())


def question_outputs(graded: dict) -> dict[str, str]:
    """question -> the feedback of its entries (public checks, then hidden), one text."""
    outputs: dict[str, list[str]] = {}
    for test in graded["tests"]:
        outputs.setdefault(results.question_of(test), []).append(test["output"])
    return {name: "\n\n".join(texts) for name, texts in outputs.items()}


def idle_sandbox_uids():
    """Each sandbox uid whose slot no grading run holds now, while the caller holds it: whatever
    such a uid still runs was left behind by a run that ended (other runs on the machine, a
    developer's or a helper's, hold their own slots and are not counted)."""
    sandbox.LEASE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    for slot in range(sandbox.MAX_SLOTS):
        with open(sandbox.LEASE_DIR / f"slot-{slot}.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            yield sandbox.slot_uid(slot)


# Gradescope's documented results.json fields and values
# (https://gradescope-autograders.readthedocs.io/en/latest/specs/, "Output format").
GRADESCOPE_TOP_LEVEL = {
    "score", "execution_time", "output", "output_format", "test_output_format",
    "test_name_format", "visibility", "stdout_visibility", "extra_data", "tests", "leaderboard",
}  # fmt: skip
GRADESCOPE_TEST = {
    "score", "max_score", "status", "name", "name_format", "number", "output", "output_format",
    "tags", "visibility", "extra_data",
}  # fmt: skip
GRADESCOPE_STATUSES = {"passed", "failed"}
GRADESCOPE_OUTPUT_FORMATS = {"text", "html", "simple_format", "md", "ansi"}
GRADESCOPE_VISIBILITIES = {"visible", "hidden", "after_due_date", "after_published"}


def assert_gradescope_results(graded: dict, hidden_visibility: str) -> None:
    """Only Gradescope's documented fields, with documented values; per question a public entry
    (visible) and a hidden one (`hidden_visibility`), each passed only when it lost nothing; the
    output says when the held-back results appear and never gives the total away."""
    assert set(graded) <= GRADESCOPE_TOP_LEVEL, set(graded) - GRADESCOPE_TOP_LEVEL
    assert graded["visibility"] in GRADESCOPE_VISIBILITIES
    assert graded["stdout_visibility"] == "hidden"  # the grader's log is the instructor's
    entries: dict[str, list[bool]] = {}
    for test in graded["tests"]:
        assert set(test) <= GRADESCOPE_TEST, set(test) - GRADESCOPE_TEST
        assert test["status"] in GRADESCOPE_STATUSES
        assert (test["status"] == "passed") == (test["score"] == test["max_score"]), test
        assert test["output_format"] in ("md", "simple_format")  # expected/got shown as code
        hidden = test["extra_data"]["hidden"]
        assert test["visibility"] == (hidden_visibility if hidden else "visible"), test
        entries.setdefault(results.question_of(test), []).append(hidden)
    assert entries == {name: [False, True] for name in bank.FULL_MARKS}
    if hidden_visibility == "visible":
        total = sum(test["max_score"] for test in graded["tests"])
        assert f"Autograded score: {graded['score']:g} / {total:g} " in graded["output"]
    else:
        assert results.WHEN_SHOWN[hidden_visibility] in graded["output"]
        assert "Autograded score" not in graded["output"], graded["output"]
