"""The grader reads otter's test files exactly as otter does, and runs them outside the kernel."""

import pytest
from otter.test_files import ExceptionTestFile

from mnist_grader import checks


def test_test_files_read_like_otter_reads_them(dist):
    tests_dir = dist / "autograder" / "tests"
    ours = checks.load_test_files(tests_dir)
    assert [f.name for f in ours] == ["q4a", "q4b", "q4c", "q4d", "q5", "q6"]
    for test_file in ours:
        otters = ExceptionTestFile.from_file(str(tests_dir / f"{test_file.name}.py"))
        assert otters.name == test_file.name
        assert [(c.body.test_func.__name__, c.points, c.hidden) for c in otters.test_cases] == [
            (c.name, c.points, c.hidden) for c in test_file.cases
        ]


def test_files_outside_otters_template_are_refused(tmp_path):
    path = tmp_path / "q1.py"
    path.write_text("name = 'q1'\npoints = 1\nall_or_nothing = True\n")
    with pytest.raises(ValueError):
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
