"""Running the checks: otter's test files, executed by the grader, never by the student's kernel.

The test files are the ones `otter assign` wrote from the master notebook (public and hidden test
cases together, in the autograder build). otter parses them; we call each test case's function
ourselves, here in the grader process, with the student's functions and values standing in as
remote proxies (mnist_grader.session). Why not otter's own runner: its failure message quotes the
line of the test's source, which would show hidden checks to students.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class CaseResult:
    name: str
    points: float
    passed: bool
    hidden: bool
    feedback: str = ""
    # The feedback record of a failed check (mnist_exercise.Feedback), as shown: the class
    # report groups wrong answers by `got`. Empty when the failure was not a CheckFailed.
    message: str = ""
    expected: str = ""
    got: str = ""
    out_of_memory: bool = False  # the grader ran out of its memory checking it (see run_checks)

    @property
    def score(self) -> float:
        return self.points if self.passed else 0.0


@dataclass
class QuestionResult:
    name: str
    cases: list = field(default_factory=list)
    all_or_nothing: bool = False  # otter's: the question's points only when every check passes

    @property
    def score(self) -> float:
        if self.all_or_nothing and not all(c.passed for c in self.cases):
            return 0.0
        return round(sum(c.score for c in self.cases), 4)

    @property
    def max_score(self) -> float:
        return round(sum(c.points for c in self.cases), 4)

    def output(self) -> str:
        """One paragraph per check, its feedback an indented block after a blank line: Markdown
        (results.json's output_format) shows that block as code, word for word, so nothing the
        student's code returned is read as Markdown."""
        paragraphs = []
        if self.all_or_nothing:
            paragraphs.append(
                f"All or nothing: the {self.max_score:g} points need every check to pass."
            )
        for case in self.cases:
            mark = "passed" if case.passed else "FAILED"
            kind = "hidden check" if case.hidden else "check"
            paragraphs.append(f"[{mark}] {kind}: {case.name} ({case.score:g}/{case.points:g})")
            if case.feedback:
                paragraphs.append("\n".join("    " + line for line in case.feedback.splitlines()))
        return "\n\n".join(paragraphs)


@dataclass
class TestCase:
    name: str  # the test function's name
    points: float
    hidden: bool
    function: object


@dataclass
class TestFile:
    name: str  # the question, e.g. "q4d"
    cases: list
    source: str = ""  # the file's text
    all_or_nothing: bool = False


class _TestCaseDecorator:
    """Stands in for otter.test_files.test_case while a test file is read (its signature)."""

    def __init__(
        self, name=None, points=None, hidden=False, success_message=None, failure_message=None
    ):
        self.points, self.hidden = points, hidden

    def __call__(self, function):
        self.function = function
        return self


OTTER_IMPORT = "from otter.test_files import test_case"


def resolve_points(total, case_points: list) -> list[float]:
    """Each test case's points, from the question's `points` (a number, a list with one entry
    per case, or None) and the cases' own (None where unset), as otter's
    TestFile.resolve_test_file_points gives them: a list sets each case's points; a number is
    what the cases without points share, after those with points; with neither, a question of
    unset (or zero) cases is worth 1 point, shared, and otherwise the unset ones are worth 0."""
    if isinstance(total, list):
        if len(total) != len(case_points):
            raise ValueError(f"points lists {len(total)} values for {len(case_points)} test cases")
        case_points, total = list(total), None
    elif total is not None and not _is_number(total):
        raise ValueError(f"points must be a number or a list, not {total!r}")
    if not all(p is None or _is_number(p) for p in case_points):
        raise ValueError(f"a test case's points must be a number: {case_points!r}")
    given = sum(p for p in case_points if p is not None)
    unset = sum(p is None for p in case_points)
    if total is not None:
        if given > total:
            raise ValueError(f"the test cases' points ({given:g}) exceed the question's {total:g}")
        share = (total - given) / unset if unset else 0.0
    elif given == 0 and unset:
        share = 1 / unset
    else:
        share = 0.0
    return [float(share if p is None else p) for p in case_points]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_test_file(path: Path) -> TestFile:
    """One of otter's exception-format test files, read without importing otter.

    Why by hand: `import otter.test_files` imports all of otter (pandas, nbconvert): 55 MB and
    0.6 s in every grading process, to read a few small files that otter assign wrote from a
    fixed template. The format is otter's exception format: `name`, `points` (a number, a list
    per case, or absent), `all_or_nothing` and @test_case(points=..., hidden=...);
    tests/test_checks.py proves this gives the cases, points and scores otter's own parser and
    runner give, for every form. Anything else is refused with the reason rather than guessed.
    """
    source = path.read_text()
    if OTTER_IMPORT not in source:
        raise ValueError(f"{path.name} is not an otter exception-format test file")
    namespace: dict = {}
    code = compile(source.replace(OTTER_IMPORT, ""), str(path), "exec")
    exec(code, {"test_case": _TestCaseDecorator}, namespace)
    if "name" not in namespace:
        raise ValueError(f"{path.name} does not define the question's name")
    decorated = [v for v in namespace.values() if isinstance(v, _TestCaseDecorator)]
    try:
        points = resolve_points(namespace.get("points"), [d.points for d in decorated])
    except ValueError as error:
        raise ValueError(f"{path.name}: {error}") from None
    cases = [
        TestCase(d.function.__name__, share, bool(d.hidden), d.function)
        for d, share in zip(decorated, points, strict=True)
    ]
    return TestFile(namespace["name"], cases, source, bool(namespace.get("all_or_nothing")))


def load_test_files(tests_dir: Path) -> list[TestFile]:
    """The test file of each question, in question order (q4a, q4b, ..., q6)."""
    files = sorted(tests_dir.glob("q*.py"), key=lambda p: _natural(p.stem))
    return [load_test_file(path) for path in files]


def question_names(tests_dir: Path) -> list[str]:
    return [path.stem for path in sorted(tests_dir.glob("q*.py"), key=lambda p: _natural(p.stem))]


def _natural(text: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _readable(name: str) -> str:
    return name.removeprefix("test_").replace("_", " ")


def parameters(test_files) -> set[str]:
    return {
        name
        for test_file in test_files
        for case in test_file.cases
        for name in inspect.signature(case.function).parameters
    }


def _feedback(error: BaseException) -> str:
    """What a failed check says to the student: the feedback record, never the check's source.

    The checks turn everything the student's code does into a CheckFailed themselves
    (mnist_exercise.call_student, student_check), in the notebook and here alike; what is left
    are the grader's own problems: a call out of time, a lost kernel, an unreadable answer."""
    import mnist_exercise as ex

    from . import remote, wire
    from . import session as sess

    if isinstance(error, ex.CheckFailed):
        return str(error)
    if isinstance(error, (remote.CallTimedOut, sess.KernelGone)):
        return str(error)[0].upper() + str(error)[1:] + "."
    if isinstance(error, wire.BadAnswer):
        return f"What your code returned could not be read by the grader ({error})."
    detail = wire.one_line(error, 200)  # it may quote the student's values
    return f"The check could not use what your code returned ({type(error).__name__}: {detail})."


def _record(error: BaseException) -> dict:
    """A failed check's message / expected / got, when it failed with a feedback record."""
    import mnist_exercise as ex

    if not isinstance(error, ex.CheckFailed):
        return {}
    record = error.feedback
    return {"message": record.message, "expected": record.expected, "got": record.got}


TOO_LARGE = (
    "something your code returned or described (an array, a model's weights) is far larger "
    "than this exercise needs"
)
OUT_OF_MEMORY_FEEDBACK = f"Checking this needed more memory than the grader allows: {TOO_LARGE}."


def run_checks(test_files, environment, done=None) -> list[QuestionResult]:
    """Run every test case against `environment` (name -> proxy or value, resolved lazily);
    `done(question name)` after each question's cases (grader.log's phases)."""
    results = []
    for test_file in test_files:
        question = QuestionResult(test_file.name, all_or_nothing=test_file.all_or_nothing)
        for case in test_file.cases:
            function = case.function
            try:
                arguments = {
                    name: environment(name) for name in inspect.signature(function).parameters
                }
                function(**arguments)
            except MemoryError:  # past --grader-memory-mb: this check fails, the others still run
                passed, feedback, record = False, OUT_OF_MEMORY_FEEDBACK, {"out_of_memory": True}
            except Exception as error:  # every failure, of any kind, is lost points with a reason
                passed, feedback, record = False, _feedback(error), _record(error)
            else:
                passed, feedback, record = True, "", {}
            question.cases.append(
                CaseResult(
                    _readable(case.name), case.points, passed, case.hidden, feedback, **record
                )
            )
        results.append(question)
        if done is not None:
            done(test_file.name)
    return results


def zero_results(test_files, reason: str) -> list[QuestionResult]:
    """Every check failed for one reason (the file could not be read, say)."""
    return [
        QuestionResult(
            test_file.name,
            [
                CaseResult(_readable(case.name), case.points, False, case.hidden, reason)
                for case in test_file.cases
            ],
            test_file.all_or_nothing,
        )
        for test_file in test_files
    ]
