"""The Fashion-MNIST variant: one switch builds the same exercise on real Fashion-MNIST.

`make assignment DATASET=fashion_mnist` (here: assign.build) writes build/fashion_mnist/ from the
MNIST master; its own bank is graded through the real grader with the variant's checks, on
Debian's dataset-fashion-mnist, and the MNIST build stays as it is.
"""

import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import nbformat
import numpy as np
import pytest

from mnist_grader import (
    ASSIGNMENT_DIR,
    MASTER_DIR,
    SOLUTIONS_DIR,
    assign,
    batch,
    engine,
    package,
    variants,
)
from tests import bank
from tests.conftest import assert_graded_as_expected, question_outputs, read_results, require

FASHION = variants.get("fashion_mnist")
DEBIAN_DATA = Path("/usr/share/datasets/fashion-mnist")
CASES = {case.name: case for case in bank.FASHION_CASES}


def _snapshot(*folders: Path) -> dict:
    return {
        p: p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def fashion_data() -> Path:
    require(
        (DEBIAN_DATA / "train-images-idx3-ubyte.gz").is_file(),
        f"Fashion-MNIST is not in {DEBIAN_DATA} (apt-get install dataset-fashion-mnist)",
    )
    return DEBIAN_DATA


@pytest.fixture(scope="module")
def mnist_before_and_after():
    """The committed MNIST files before and after the variant's build."""
    before = _snapshot(ASSIGNMENT_DIR, SOLUTIONS_DIR)
    assign.build(FASHION)
    return before, _snapshot(ASSIGNMENT_DIR, SOLUTIONS_DIR)


@pytest.fixture(scope="module")
def built(mnist_before_and_after) -> variants.Variant:
    return FASHION


@pytest.fixture(scope="module")
def exercise(built):
    return engine.exercise_module(built.checks_dir)


@pytest.fixture(scope="module")
def graded_fashion_bank(built, fashion_data, settings, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fashion-bank")
    bank.build(folder, "fashion_mnist")
    out = tmp_path_factory.mktemp("fashion-grades")
    fashion_settings = replace(settings, checks_dir=built.checks_dir, data_file=fashion_data)
    batch.grade_batch(folder, out, fashion_settings, jobs=2, progress=False)
    return out


def test_the_switch_leaves_the_mnist_build_alone(mnist_before_and_after):
    before, after = mnist_before_and_after
    assert before == after
    assert FASHION.assignment_dir != ASSIGNMENT_DIR


def test_the_student_notebook_is_about_clothes(built):
    nb = nbformat.read(built.assignment_dir / assign.NOTEBOOK_NAME, as_version=4)
    text = "\n".join(cell.source for cell in nb.cells)
    assert "Fashion-MNIST" in text and "ankle boot" in text
    assert "handwritten" not in text and "digit" not in text
    assert "hidden=True" not in "".join(
        p.read_text() for p in (built.assignment_dir / "tests").glob("*.py")
    )
    module = (built.assignment_dir / "mnist_exercise.py").read_text()
    assert 'DATASET = "fashion_mnist"' in module
    rubric = (built.solutions_dir / "rubric.md").read_text()
    assert "digit" not in rubric and "ankle boot" in rubric


def test_the_loader_reads_debians_fashion_mnist(exercise, fashion_data, monkeypatch):
    monkeypatch.delenv(exercise.DATA_ENV_VAR, raising=False)
    assert exercise.find_data_file() == fashion_data  # a known place: no variable needed
    (x_train, y_train), (x_test, y_test) = exercise.load_dataset()
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and x_test.shape == (10000, 28, 28)
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert int(y_test[0]) == exercise.FIRST_TEST_CLASS == 9
    assert exercise.CLASS_NAMES[9] == "Ankle boot"


def test_feedback_names_the_classes(exercise):
    with pytest.raises(exercise.CheckFailed, match=r"The first test image is a 9 \(Ankle boot\)"):
        exercise.check_first_test_image(lambda probs: 7)


@pytest.mark.parametrize("name", CASES)
def test_fashion_bank_scores(graded_fashion_bank, name):
    assert_graded_as_expected(graded_fashion_bank, CASES[name])


def test_digit_labels_are_told_to_use_class_names(graded_fashion_bank):
    q6 = question_outputs(read_results(graded_fashion_bank, "fails_q6_digit_labels"))["q6"]
    assert "bars labelled with the class names" in q6 and "'Ankle boot'" in q6


def test_the_variants_zip_carries_its_data(built, fashion_data, tmp_path):
    target = package.build_zip(fashion_data, built.checks_dir, tmp_path / "fashion.zip")
    names = zipfile.ZipFile(target).namelist()
    assert "data/fashion_mnist/x_train.npy" in names and "data/mnist/x_train.npy" not in names


def test_what_python_and_jupyter_leave_in_the_master_stays_out_of_the_variant(
    tmp_path, monkeypatch
):
    """An instructor who imported the module or opened the notebook has a __pycache__/ and an
    .ipynb_checkpoints/ in the master: the variant is made from the master's own files only."""
    master = tmp_path / "master"
    shutil.copytree(MASTER_DIR, master, ignore=shutil.ignore_patterns("__pycache__", ".*"))
    own = sorted(p.name for p in master.iterdir())
    (master / "__pycache__").mkdir()
    (master / "__pycache__" / "mnist_exercise.cpython-311.pyc").write_bytes(b"\x00\xff")
    (master / ".ipynb_checkpoints").mkdir()
    (master / ".ipynb_checkpoints" / "mnist_first_steps-checkpoint.ipynb").write_text("{}")
    (master / ".DS_Store").write_bytes(b"\x00\x01")
    monkeypatch.setattr(variants, "MASTER_DIR", master)
    written = FASHION.master(tmp_path / "variant")
    assert sorted(p.name for p in written.iterdir()) == sorted([*own, variants.RUBRIC.name])
    assert "fashion" in (written / "mnist_exercise.py").read_text().lower()


def test_an_edit_the_master_no_longer_fits_stops_the_build(tmp_path):
    stale = variants.Variant("stale", (("text the master does not have", "anything"),))
    with pytest.raises(ValueError, match="no longer contains"):
        stale.master(tmp_path)
