"""Adding a question takes four edits: the master notebook, its check in the support module, one
bank case and one mutation (docs/adding-a-question.md). Everything else follows from them.

In a scratch copy of the checkout, q7 is added as a new TA would: `count_confident(probs,
threshold)` with a public and a hidden check (points as a list, [1, 2]), a check function in
mnist_exercise.py, a bank case that hard-codes the public answer, and a mutation of the new check.
Then `make assignment docs` and `python -m mnist_grader autograder`; the narrow tests that used to
spell the questions by hand pass there unchanged; the zip carries q7's checks; and grading two of
the bank's notebooks (the reference and the new case) gives results.json, the gradebook and the
class report with q7 in them, scored as the bank expects.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import tempfile
import zipfile
from pathlib import Path

import nbformat
import pytest

from tests import bank, mutants
from tests.conftest import question_maxima, question_scores
from tests.test_bank import failed_checks, matches

NEW_CASE = "fails_hidden_q7_hardcoded_count"
MASTER = "autograder/master/mnist_first_steps.ipynb"

QUESTION_CELLS = [
    ("raw", "# BEGIN QUESTION\nname: q7\npoints: [1, 2]"),
    (
        "markdown",
        "## Question 7: how sure is the model?\n\nComplete `count_confident(probs, threshold)`: "
        "the number of rows of `probs` whose largest probability is at least `threshold`.",
    ),
    ("raw", "# BEGIN SOLUTION"),
    (
        "code",
        "def count_confident(probs, threshold):\n"
        '    """How many rows have a largest probability of at least `threshold`."""\n'
        "    # BEGIN SOLUTION\n"
        "    return int(np.sum(np.max(probs, axis=-1) >= threshold))\n"
        "    # END SOLUTION",
    ),
    ("raw", "# END SOLUTION"),
    ("code", 'print("confident predictions:", count_confident(probs, 0.9))'),
    ("raw", "# BEGIN TESTS"),
    (
        "code",
        "def test_three_rows(count_confident):\n"
        "    import numpy as np\n"
        "    from mnist_exercise import check_count_confident\n\n"
        "    check_count_confident(count_confident, np.array([[0.95, 0.05], [0.5, 0.5]]), 0.9)",
    ),
    (
        "code",
        "# HIDDEN\n"
        "def test_random_rows(count_confident):\n"
        "    import numpy as np\n"
        "    from mnist_exercise import check_count_confident, check_seed\n\n"
        "    rng = np.random.default_rng(check_seed())\n"
        "    rows = rng.dirichlet(np.ones(10) * 0.2, size=int(rng.integers(20, 40)))\n"
        "    check_count_confident(count_confident, rows, 0.5)",
    ),
    ("raw", "# END TESTS"),
    ("raw", "# END QUESTION"),
]

CHECK = """

@student_check
def check_count_confident(count_confident, probs, threshold) -> None:
    probs = np.asarray(probs)
    got = call_student(count_confident, "count_confident", probs, threshold)
    want = int(np.sum(np.max(probs, axis=-1) >= threshold))
    expect(
        as_class(got) == want,
        f"Of these {len(probs)} rows, {want} have a largest probability of at least {threshold:g}.",
        want,
        got,
    )
"""

BANK_CASE = f'''    Case(
        "{NEW_CASE}",
        "count_confident returns the public check's answer whatever it is given",
        {{"count_confident": "def count_confident(probs, threshold):\\n    return 1\\n"}},
        {{"q7": 1}},
        feedback={{
            "q7/random rows": "Of these {{n}} rows, {{n}} have a largest probability of at "
            "least 0.5.",
        }},
    ),
'''

MUTATION = f"""    Mutation(
        "count check accepts any count",
        EXERCISE,
        "        as_class(got) == want,\\n        f\\"Of these",
        "        True,\\n        f\\"Of these",
        bank_test("{NEW_CASE}"),
        ("{NEW_CASE}",),
    ),
"""


def _append_to_list(path: Path, name: str, text: str) -> None:
    """`text` added as the last entry of the top-level list `name = [...]` in `path`."""
    source = path.read_text()
    start = source.index(f"\n{name} = [\n")
    end = source.index("\n]\n", start) + 1
    path.write_text(source[:end] + text + source[end:])


def add_question(tree: Path) -> None:
    """The four edits, and nothing else."""
    nb = nbformat.read(tree / MASTER, as_version=4)
    end = max(i for i, c in enumerate(nb.cells) if c.source.strip() == "# END QUESTION")
    new = {"raw": nbformat.v4.new_raw_cell, "markdown": nbformat.v4.new_markdown_cell}
    cells = [new.get(kind, nbformat.v4.new_code_cell)(source) for kind, source in QUESTION_CELLS]
    nb.cells[end + 1 : end + 1] = cells
    nbformat.write(nb, tree / MASTER)
    exercise = tree / mutants.EXERCISE
    exercise.write_text(exercise.read_text() + CHECK)
    _append_to_list(tree / "tests/bank/__init__.py", "CASES", BANK_CASE)
    _append_to_list(tree / "tests/mutants.py", "MUTATIONS", MUTATION)


def _run(tree: Path, *command: str) -> str:
    ran = subprocess.run(command, cwd=tree, capture_output=True, text=True, env=_env())
    assert ran.returncode == 0, f"{' '.join(command)}:\n{ran.stdout[-3000:]}\n{ran.stderr[-3000:]}"
    return ran.stdout


def _env() -> dict:
    default = Path(__file__).resolve().parent.parent.parent / "shared/datasets/mnist.npz"
    return {**os.environ, "MNIST_NPZ": os.environ.get("MNIST_NPZ") or str(default)}


def _python(tree: Path, code: str):
    """What `code` prints as JSON, run by the scratch copy's Python in the scratch copy."""
    return json.loads(_run(tree, str(tree / ".venv/bin/python"), "-c", code))


@pytest.fixture(scope="module")
def tree():
    with tempfile.TemporaryDirectory(prefix="mnist-new-question-") as scratch:
        Path(scratch).chmod(0o755)  # the sandbox user must reach the venv's interpreter
        tree = mutants.scratch_copy(Path(scratch))
        add_question(tree)
        _run(tree, "make", "--no-print-directory", "assignment", "docs")
        _run(tree, str(tree / ".venv/bin/python"), "-m", "mnist_grader", "autograder")
        yield tree


def test_the_bank_and_the_docs_carry_the_new_question(tree):
    full_marks = _python(
        tree, "import json; from tests import bank; print(json.dumps(bank.FULL_MARKS))"
    )
    assert full_marks == {**bank.FULL_MARKS, "q7": 3}  # this checkout's questions, and q7
    readme = (tree / "README.md").read_text()
    total = sum(full_marks.values())
    assert f"q7 3 ({total}, auto-graded, points per check as the master sets" in readme
    assert "six functions where you see `...`" in readme and "`count_confident` (7)" in readme
    assert "| `fails_hidden_q7_hardcoded_count` |" in (tree / "docs/bank.md").read_text()


def test_the_tests_that_list_the_questions_pass_unchanged(tree):
    """The tests that once spelled the questions, functions and totals by hand."""
    _run(
        tree,
        str(tree / ".venv/bin/python"),
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_docs.py",
        "tests/test_assignment.py",
        "tests/test_checks.py",
    )


def test_the_new_mutation_applies(tree):
    applies = _python(
        tree,
        "import json, shutil, tempfile; from pathlib import Path; from tests import mutants\n"
        "m = next(m for m in mutants.MUTATIONS if m.name == 'count check accepts any count')\n"
        "copy = Path(tempfile.mkdtemp()); (copy / 'autograder/master').mkdir(parents=True)\n"
        "shutil.copy(mutants.ROOT / m.path, copy / m.path)\n"
        "print(json.dumps(mutants.apply(copy, m)))",
    )
    assert applies


def test_the_zip_carries_the_new_checks(tree):
    with zipfile.ZipFile(tree / "autograder/autograder.zip") as archive:
        names = archive.namelist()
        q7 = next(archive.read(n).decode() for n in names if n.endswith("tests/q7.py"))
        exercise = next(archive.read(n).decode() for n in names if n.endswith("mnist_exercise.py"))
    assert "points = [1, 2]" in q7 and "hidden=True" in q7 and "def test_random_rows" in q7
    assert "def check_count_confident" in exercise


def test_grading_carries_the_new_question(tree):
    """results.json, the gradebook and the class report, for the reference and the new case."""
    notebooks, chosen, out = tree / "build/bank", tree / "build/chosen", tree / "grades"
    python = str(tree / ".venv/bin/python")
    _run(tree, python, "-m", "tests.bank", str(notebooks))
    chosen.mkdir()
    for name in ("passes_all", NEW_CASE):
        (chosen / f"{name}.ipynb").write_bytes((notebooks / f"{name}.ipynb").read_bytes())
    limits = [
        "--jobs",
        "2",
        "--cell-seconds",
        "30",
        "--check-seconds",
        "10",
        "--total-seconds",
        "240",
    ]
    _run(tree, python, "-m", "mnist_grader", "grade", str(chosen), "--out", str(out), *limits)

    expected = _python(
        tree,
        "import json; from tests import bank\n"
        "cases = {c.name: c for c in bank.CASES}\n"
        f"names = ['passes_all', {NEW_CASE!r}]\n"
        "print(json.dumps({n: [bank.expected_scores(cases[n]), cases[n].feedback,"
        " bank.FULL_MARKS] for n in names}))",
    )
    for name, (scores, feedback, full_marks) in expected.items():
        results = json.loads((out / name / "results.json").read_text())
        assert question_scores(results) == scores, results["output"]
        assert question_maxima(results) == full_marks
        assert results["score"] == sum(scores.values())
        failed = failed_checks(results)
        assert set(failed) == set(feedback), name
        for check, line in failed.items():
            assert matches(feedback[check], line), f"{name} {check}: {line}"
    assert expected[NEW_CASE][0]["q7"] == 1 and expected["passes_all"][0]["q7"] == 3

    with (out / "gradebook.csv").open() as handle:
        rows = {row["file"]: row for row in csv.DictReader(handle)}
    assert list(next(iter(rows.values())))[-2:] == ["q7", "status"]
    assert float(rows[f"{NEW_CASE}.ipynb"]["q7"]) == 1
    assert float(rows[f"{NEW_CASE}.ipynb"]["total"]) == sum(bank.FULL_MARKS.values()) + 3 - 2

    report = json.loads((out / "report.json").read_text())
    q7 = next(q for q in report["questions"] if q["name"] == "q7")
    assert q7["max_score"] == 3
    hidden = next(c for c in q7["checks"] if c["check"] == "random rows")
    assert (hidden["hidden"], hidden["points"], hidden["passed"], hidden["failed"]) == (
        True,
        2,
        1,
        1,
    )
    (group,) = hidden["wrong_results"]
    assert group["got"] == "1" and NEW_CASE in group["submissions"][0]["who"]
    assert "q7" in (out / "report.html").read_text()


def test_the_worked_example_in_the_docs_is_this_one():
    """docs/adding-a-question.md shows the code this test adds, so the example is known to work."""
    doc = (Path(__file__).resolve().parent.parent / "docs/adding-a-question.md").read_text()
    for kind, source in QUESTION_CELLS:
        if kind != "markdown":  # the prompt is wrapped differently there
            assert source in doc, source
    assert CHECK.strip() in doc
    assert f'"{NEW_CASE}",' in doc and "count check accepts any count" in doc
