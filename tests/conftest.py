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

from mnist_grader import MASTER_DIR, assign, batch, engine, sandbox
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


def question_scores(results: dict) -> dict[str, float]:
    """Question -> its score in a results.json: the tests read scores per question here."""
    return {test["name"]: test["score"] for test in results["tests"]}


def question_maxima(results: dict) -> dict[str, float]:
    """Question -> its max_score in a results.json."""
    return {test["name"]: test["max_score"] for test in results["tests"]}


def assert_graded_as_expected(out: Path, case) -> None:
    """The bank case's results in `out`: every question's score, the total and the status."""
    results = read_results(out, case.name)
    expected = bank.expected_scores(case)
    assert question_scores(results) == expected, f"{case.name}: {case.why}\n{results['output']}"
    assert question_maxima(results) == bank.FULL_MARKS, f"{case.name}: max_score per question"
    assert results["extra_data"]["status"] == case.status
    assert results["score"] == sum(expected.values())


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
