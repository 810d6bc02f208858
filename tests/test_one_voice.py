"""One voice: the public checks a student runs in the notebook (otter's grader.check) say what the
grader says for the same notebook, word for word, also when an earlier cell failed or a function
is missing; and no traceback from the support module reaches the student."""

from __future__ import annotations

import asyncio
import os
import re
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from mnist_grader import ASSIGNMENT_DIR
from mnist_grader.assign import NOTEBOOK_NAME
from mnist_grader.results import question_of
from tests.conftest import read_results

# A training cell that raised (five output units), a function whose cell does not parse (so it
# is not defined), nothing filled in, a wrong label shape, a figure returned inside a tuple (which
# the wire carries as a description), rows of probabilities that do not sum to 1
NOTEBOOKS = (
    "fails_q4d_five_output_units",
    "syntax_error_in_top_class",
    "untouched_starter",
    "fails_q4b_label_count_as_int",
    "fails_q6_returns_fig_and_axes",
    "fails_q4d_probs_halved",
)


async def _run_like_a_student(notebook, folder, running: asyncio.Semaphore):
    """Every cell in a real kernel, from the assignment folder (its tests/ and support module)."""
    shutil.copytree(ASSIGNMENT_DIR, folder)
    shutil.copyfile(notebook, folder / NOTEBOOK_NAME)
    nb = nbformat.read(folder / NOTEBOOK_NAME, as_version=4)
    async with running:
        await NotebookClient(
            nb, timeout=300, allow_errors=True, resources={"metadata": {"path": str(folder)}}
        ).async_execute()
    return nb


async def _run_all(bank_dir, tmp_path_factory) -> dict:
    running = asyncio.Semaphore(2)  # two kernels at once, a core each
    runs = [
        _run_like_a_student(
            bank_dir / f"{name}.ipynb", tmp_path_factory.mktemp(name) / "a", running
        )
        for name in NOTEBOOKS
    ]
    return dict(zip(NOTEBOOKS, await asyncio.gather(*runs), strict=True))


def notebook_feedback(nb) -> dict[str, list[tuple[bool, str]]]:
    """question -> [(passed, feedback)] per public check, from grader.check's printed output."""
    found = {}
    for cell in nb.cells:
        question = re.fullmatch(r'grader\.check\("(q\w+)"\)', cell.source.strip())
        if not question:
            continue
        text = "".join(
            o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in cell.outputs
        )
        assert "Traceback" not in text and "mnist_exercise.py" not in text, text
        if "All test cases passed!" in text:
            found[question.group(1)] = None  # every check passed
            continue
        results = []
        for block in re.split(r"\n    \S.* result:\n", "\n" + text)[1:]:
            lines = [line.strip() for line in block.splitlines()]
            if lines[0].startswith("✅"):
                results.append((True, ""))
                continue
            start = next(i for i, line in enumerate(lines) if line.startswith("CheckFailed: "))
            lines[start] = lines[start].removeprefix("CheckFailed: ")
            results.append((False, "\n".join(line for line in lines[start:] if line)))
        found[question.group(1)] = results
    return found


def grader_feedback(results: dict) -> dict[str, list[tuple[bool, str]]]:
    """question -> [(passed, feedback)] per public check, from the grader's results.json."""
    found = {}
    for test in results["tests"]:
        checks, current = found.setdefault(question_of(test), []), None
        for line in test["output"].splitlines():
            if not line.strip():  # the blank lines between Markdown paragraphs
                continue
            mark = re.match(r"\[(passed|FAILED)\] (hidden )?check: ", line)
            if mark:
                current = None if mark.group(2) else [mark.group(1) == "passed", []]
                if current:
                    checks.append(current)
            elif current is not None:
                current[1].append(line.strip())
    return {
        question: [(passed, "\n".join(lines)) for passed, lines in checks]
        for question, checks in found.items()
    }


@pytest.fixture(scope="module")
def student_runs(bank_dir, tmp_path_factory):
    """The bank's notebooks run as a student runs them (training shortened: the public checks
    judge the functions on reference values, not on the trained model)."""
    saved = {name: os.environ.get(name) for name in ("MNIST_EPOCHS", "MNIST_TRAIN_IMAGES")}
    os.environ.update(MNIST_EPOCHS="1", MNIST_TRAIN_IMAGES="2000")
    try:
        return asyncio.run(_run_all(bank_dir, tmp_path_factory))
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.update({name: value})


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_and_grader_say_the_same(student_runs, graded_bank, name):
    in_notebook = notebook_feedback(student_runs[name])
    in_grader = grader_feedback(read_results(graded_bank, name))
    assert set(in_notebook) == set(in_grader)
    for question, checks in in_grader.items():
        if in_notebook[question] is None:
            assert all(passed for passed, _ in checks), question
        else:
            assert in_notebook[question] == checks, question
    assert any(not passed for checks in in_grader.values() for passed, _ in checks)
