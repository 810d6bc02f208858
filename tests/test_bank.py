"""Every golden submission gets exactly its expected score, question by question."""

import csv
import re
import subprocess
import sys

import pytest

from mnist_grader.results import question_of
from tests import bank
from tests.conftest import (
    ROOT,
    assert_graded_as_expected,
    assert_gradescope_results,
    question_outputs,
    question_scores,
    read_results,
)

CASES = {case.name: case for case in bank.ALL_CASES}


@pytest.mark.parametrize("name", CASES)
def test_expected_scores(graded_bank, name):
    assert_graded_as_expected(graded_bank, CASES[name])


GOLDEN = [case.name for case in bank.CASES if case.name.startswith("fails_")]


def _questions_named(name: str) -> set[str]:
    return set(re.findall(r"q\d[a-z]?", name))


def test_every_golden_mistake_names_its_questions():
    for name in GOLDEN:
        assert _questions_named(name) <= set(bank.FULL_MARKS), name
        assert _questions_named(name), name


@pytest.mark.parametrize("name", GOLDEN)
def test_a_mistake_costs_points_only_in_its_question(graded_bank, name):
    """Error carried forward: a wrong function loses points in the question where it is asked
    for, never in a question that merely uses its result (those checks use reference values)."""
    scores = question_scores(read_results(graded_bank, name))
    elsewhere = {q: s for q, s in scores.items() if q not in _questions_named(name)}
    assert elsewhere == {q: bank.FULL_MARKS[q] for q in elsewhere}, name


def failed_checks(results: dict) -> dict[str, str]:
    """ "question/check" -> the first line of its feedback, for every failed check."""
    failed = {}
    for test in results["tests"]:
        lines = [line for line in test["output"].splitlines() if line.strip()]
        for line, following in zip(lines, [*lines[1:], ""], strict=True):
            found = re.match(r"\[FAILED\] (?:hidden )?check: (.*) \(", line)
            if found:
                failed[f"{question_of(test)}/{found.group(1)}"] = following.strip()
    return failed


def matches(expected: str, line: str) -> bool:
    pattern = re.escape(expected).replace(re.escape("{n}"), r"\d+")
    return re.fullmatch(pattern, line) is not None


@pytest.mark.parametrize("name", GOLDEN)
def test_exact_first_feedback_line_of_every_failed_check(graded_bank, name):
    """What each golden mistake is told, word for word: a message cannot drift unnoticed."""
    failed = failed_checks(read_results(graded_bank, name))
    expected = CASES[name].feedback
    assert set(failed) == set(expected), name
    for check, line in failed.items():
        assert matches(expected[check], line), f"{name} {check}:\n{line}"


def test_results_json_follows_gradescope_schema(graded_bank):
    """Grading on this machine shows everything: the instructor reads it."""
    for name in ("passes_all", "fails_q5_argmax_axis0"):
        results = read_results(graded_bank, name)
        assert_gradescope_results(results, "visible")
        for test in results["tests"]:
            assert 0 <= test["score"] <= test["max_score"]
    statuses = {t["name"]: t["status"] for t in read_results(graded_bank, name)["tests"]}
    assert statuses["q5: public checks"] == "failed" and statuses["q4a: public checks"] == "passed"


def test_feedback_shows_as_code_in_markdown(graded_bank):
    """Gradescope renders each test's output as Markdown (output_format md): every check is a
    paragraph of its own, and its feedback (what the student's code returned included) a code
    block, shown word for word; a student's text forging report lines stays inside it."""
    import mistune

    for name, question in (("fails_q4b_label_length_10", "q4b"), ("forges_report_lines", "q5")):
        test = next(
            t for t in read_results(graded_bank, name)["tests"] if t["name"].startswith(question)
        )
        page = mistune.html(test["output"])
        paragraphs = re.findall(r"<p>(.*?)</p>", page, re.DOTALL)
        assert all(p.startswith(("[passed]", "[FAILED]")) for p in paragraphs), page
        marks = [line for line in test["output"].splitlines() if line.startswith("[")]
        assert len(paragraphs) == len(marks), page
        blocks = re.findall(r"<pre><code>(.*?)</code></pre>", page, re.DOTALL)
        assert blocks and all("\n" in block for block in blocks), page
    assert "got:      (10,)" in mistune.html(
        question_outputs(read_results(graded_bank, "fails_q4b_label_length_10"))["q4b"]
    )


def test_gradebook_has_a_row_per_submission(graded_bank):
    with (graded_bank / "gradebook.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["file"] for row in rows) == sorted(f"{n}.ipynb" for n in CASES)
    assert list(rows[0]) == ["file", "total", *bank.FULL_MARKS, "status"]
    for row in rows:
        expected = bank.expected_scores(CASES[row["file"].removesuffix(".ipynb")])
        assert float(row["total"]) == sum(expected.values())
    plot = graded_bank / "score_distribution.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_feedback_speaks_to_the_student(graded_bank):
    """Failures come as message / expected / got, with the hint for the common mistake."""
    outputs = {
        name: question_outputs(read_results(graded_bank, name))
        for name in (
            "fails_q4b_label_length_10",
            "fails_q5_argmax_axis0",
            "fails_q4d_logits_without_softmax",
        )
    }
    label = outputs["fails_q4b_label_length_10"]["q4b"]
    assert "expected: (60000,)" in label and "got:      (10,)" in label
    assert "10 is the number of classes" in label
    assert "axis=0" in outputs["fails_q5_argmax_axis0"]["q5"]
    assert "logits" in outputs["fails_q4d_logits_without_softmax"]["q4d"]


def test_hidden_checks_source_never_reaches_students(graded_bank, dist):
    """Feedback quotes messages, never the checks' code (otter's own runner would)."""
    hidden_lines = {
        line.strip()
        for path in (dist / "autograder" / "tests").glob("*.py")
        for line in path.read_text().splitlines()
        if "rng" in line
    }
    for name in CASES:
        text = (graded_bank / name / "results.json").read_text()
        assert not any(line in text for line in hidden_lines), name


def _got(results: dict, check: str) -> str:
    return next(c["got"] for c in results["extra_data"]["checks"] if c["check"] == check)


def test_what_predict_probs_returned_is_named(graded_bank):
    """The sums check and the output check say what the rows hold, not only that they are off."""
    got = {
        name: read_results(graded_bank, name)
        for name in (
            "fails_q4d_probs_halved",
            "fails_q4d_probs_doubled",
            "fails_q4d_probs_uniform",
            "fails_q4d_probs_one_hot",
        )
    }
    assert _got(got["fails_q4d_probs_halved"], "probs sum to one") == "rows that sum to 0.5"
    assert _got(got["fails_q4d_probs_doubled"], "probs sum to one") == "rows that sum to 2"
    uniform = _got(got["fails_q4d_probs_uniform"], "probs are the models output")
    assert uniform == "the same value, 0.1, for every class"
    one_hot = _got(got["fails_q4d_probs_one_hot"], "probs are the models output")
    assert one_hot.startswith("one-hot rows")


def test_figures_are_described_as_found(graded_bank):
    """A figure that does not show what was asked is told what was found, in words."""
    same_axes = read_results(graded_bank, "fails_q6_image_and_bars_in_one_axes")
    assert _got(same_axes, "ten bars of probabilities") == "the image and the bars in the same axes"
    tupled = read_results(graded_bank, "fails_q6_returns_fig_and_axes")
    assert _got(tupled, "returns the figure") == "a tuple of 2 items, one of them the figure"


def test_a_cell_that_fails_only_while_grading_says_why(graded_bank):
    """The book's x_train.reshape((60000, ...)) fails on the grader's shorter training set: the
    student is told that, and what to write instead."""
    output = read_results(graded_bank, "passes_all_hardcoded_60000_cell")["output"]
    assert "cannot reshape array" in output
    assert "x_train holds the first 20000 training images, not 60000" in output
    assert "x_train.shape[0]" in output


def test_the_demo_class_is_bank_cases_built_the_same_way(graded_bank, bank_dir, tmp_path):
    """`make grade` with no arguments builds the demo (python -m tests.bank DIR --demo): the
    reference, the starter and golden mistakes, written byte for byte as the bank writes them,
    so the bank's grading above is theirs: each scores as its case expects."""
    demo = tmp_path / "demo"
    subprocess.run([sys.executable, "-m", "tests.bank", str(demo), "--demo"], check=True, cwd=ROOT)
    built = sorted(path.stem for path in demo.glob("*.ipynb"))
    assert built == sorted(bank.DEMO)
    assert {"passes_all", "untouched_starter"} <= set(built)
    assert len(set(built) & set(GOLDEN)) >= 5 and set(built) <= {c.name for c in bank.CASES}
    missing = [name for name in built if not (bank_dir / f"{name}.ipynb").exists()]
    if missing:
        pytest.skip(f"BANK_CASES leaves out demo cases {missing}")
    for name in built:
        assert (demo / f"{name}.ipynb").read_bytes() == (bank_dir / f"{name}.ipynb").read_bytes()
        assert_graded_as_expected(graded_bank, CASES[name])
