"""The grader reads otter's test files exactly as otter does, and runs them outside the kernel."""

from pathlib import Path

import pytest
from otter.test_files import ExceptionTestFile

from mnist_grader import checks, questions


def test_test_files_read_like_otter_reads_them(dist):
    tests_dir = dist / "autograder" / "tests"
    ours = checks.load_test_files(tests_dir)
    assert [f.name for f in ours] == list(questions.full_marks())
    for test_file in ours:
        otters = ExceptionTestFile.from_file(str(tests_dir / f"{test_file.name}.py"))
        assert otters.name == test_file.name
        assert [(c.body.test_func.__name__, c.points, c.hidden) for c in otters.test_cases] == [
            (c.name, c.points, c.hidden) for c in test_file.cases
        ]


def test_the_master_gives_the_questions_otter_assign_writes(dist):
    """mnist_grader.questions reads the master as otter assign does: the same questions, checks,
    points and hidden flags as the test files it wrote."""
    written = {
        f.name: [(c.name, c.points, c.hidden) for c in f.cases]
        for f in checks.load_test_files(dist / "autograder" / "tests")
    }
    assert written == {
        q.name: [(c.name, c.points, c.hidden) for c in q.checks] for q in questions.autograded()
    }
    assert all(q.points == sum(c.points for c in q.checks) for q in questions.autograded())


def _test_file(tmp_path, total: str, case_points: list) -> Path:
    """An exception-format test file as otter assign writes it: `points = <total>`, then one
    @test_case per entry of case_points (the second one hidden)."""
    cases = "".join(
        f"@test_case(points={p}, hidden={index == 1})\ndef test_{index}(f):\n"
        f"    assert f == {index}\n\n"
        for index, p in enumerate(case_points)
    )
    path = tmp_path / "q9.py"
    path.write_text(
        "from otter.test_files import test_case\n\nOK_FORMAT = False\n\nname = 'q9'\n"
        f"points = {total}\n\n{cases}"
    )
    return path


POINT_FORMS = {  # otter's documented forms of `points`: the question's and each case's
    "a number shared by the cases": ("5", [None, None, None]),
    "a number shared after a case's own": ("5", [2, None, None]),
    "a list, one per case": ("[1, 2, 0.5]", [None, None, None]),
    "a list with an unset entry": ("[1, None, 0]", [None, None, None]),
    "no total: each case its own": ("None", [1, 2, 3]),
    "no total and no case's: 1 shared": ("None", [None, None, None]),
    "no total, some cases': the rest 0": ("None", [2, None, None]),
}


@pytest.mark.parametrize("form", POINT_FORMS)
def test_every_form_of_points_read_as_otter_reads_it(tmp_path, form):
    total, case_points = POINT_FORMS[form]
    path = _test_file(tmp_path, total, case_points)
    ours = checks.load_test_file(path)
    otters = ExceptionTestFile.from_file(str(path))
    assert [(c.name, c.points, c.hidden) for c in ours.cases] == [
        (c.body.test_func.__name__, c.points, c.hidden) for c in otters.test_cases
    ]
    assert ours.cases[1].hidden and not ours.cases[0].hidden


def test_points_as_a_list_score_per_case(tmp_path):
    path = _test_file(tmp_path, "[1, 2, 0.5]", [None, None, None])
    results = checks.run_checks([checks.load_test_file(path)], lambda name: 1)
    assert [(c.name, c.passed, c.score) for c in results[0].cases] == [
        ("0", False, 0),
        ("1", True, 2),
        ("2", False, 0),
    ]
    assert (results[0].score, results[0].max_score) == (2, 3.5)


INVALID = {
    "a list of the wrong length": ("[1, 2]", [None, None, None], "2 values for 3 test cases"),
    "cases worth more than the total": ("2", [2, 1, None], "exceed"),
    "points that are not a number": ("'two'", [None, None, None], "a number or a list"),
}


@pytest.mark.parametrize("form", INVALID)
def test_points_otter_refuses_are_refused_with_the_reason(tmp_path, form):
    total, case_points, reason = INVALID[form]
    path = _test_file(tmp_path, total, case_points)
    with pytest.raises(Exception):  # noqa: B017 (otter raises ValueError, TypeError or its own)
        ExceptionTestFile.from_file(str(path))
    with pytest.raises(ValueError, match=reason):
        checks.load_test_file(path)


@pytest.mark.parametrize("all_or_nothing", [False, True])
@pytest.mark.parametrize("value", [0, 1, 2])
def test_scores_are_otters(tmp_path, all_or_nothing, value):
    """The score of a question, all-or-nothing or not, whichever checks pass: otter's runner's."""
    path = _test_file(tmp_path, "[1, 2, 0.5]", [None, None, None])
    if all_or_nothing:
        path.write_text(path.read_text().replace("points = [", "all_or_nothing = True\npoints = ["))
    results = checks.run_checks([checks.load_test_file(path)], lambda name: value)
    otters = ExceptionTestFile.from_file(str(path))
    otters.run({"f": value})
    assert [c.passed for c in results[0].cases] == [r.passed for r in otters.test_case_results]
    assert (results[0].score, results[0].max_score) == (otters.score, otters.possible)
    assert ("All or nothing" in results[0].output()) == all_or_nothing


def test_files_outside_otters_format_are_refused(tmp_path):
    path = tmp_path / "q1.py"
    path.write_text("name = 'q1'\npoints = 1\n")
    with pytest.raises(ValueError, match="not an otter exception-format test file"):
        checks.load_test_file(path)
    path.write_text("from otter.test_files import test_case\npoints = 1\n")
    with pytest.raises(ValueError, match="does not define the question's name"):
        checks.load_test_file(path)


def test_points_given_per_case_and_shared_by_the_rest(tmp_path):
    path = tmp_path / "q9.py"
    path.write_text(
        "from otter.test_files import test_case\n\nOK_FORMAT = False\nname = 'q9'\npoints = 5\n\n"
        "@test_case(points=2, hidden=False)\ndef test_a(f):\n    pass\n\n"
        "@test_case(points=None, hidden=True)\ndef test_b(f):\n    pass\n\n"
        "@test_case(points=None, hidden=False)\ndef test_c(f):\n    assert f == 1\n"
    )
    test_file = checks.load_test_file(path)
    assert [(c.name, c.points, c.hidden) for c in test_file.cases] == [
        ("test_a", 2.0, False),
        ("test_b", 1.5, True),
        ("test_c", 1.5, False),
    ]
    otters = ExceptionTestFile.from_file(str(path))
    assert [c.points for c in otters.test_cases] == [2, 1.5, 1.5]
    results = checks.run_checks([test_file], lambda name: 2)
    assert [(c.name, c.passed) for c in results[0].cases] == [
        ("a", True),
        ("b", True),
        ("c", False),
    ]
    assert results[0].score == 3.5


@pytest.fixture(autouse=True)
def _master_exercise(master_exercise):
    """The checks' feedback and the wire's model descriptions come from the master's module."""
