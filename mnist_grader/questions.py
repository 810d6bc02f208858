"""The questions, as the master notebook defines them: the one source of their names, points,
checks and of the functions students write.

Read from autograder/master/mnist_first_steps.ipynb in otter assign's format (a raw
`# BEGIN QUESTION` cell with the question's YAML, raw `# BEGIN SOLUTION` / `# BEGIN TESTS`
blocks). The tests, the bank's full marks and the docs' points lines are derived from this;
tests/test_checks.py proves it gives the questions, checks and points of the test files otter
assign writes from the same master. Why not otter's own reader: otter assign parses the master
only as part of writing the whole assignment (seconds, and a folder), and these few facts are
needed at import time by the bank and the docs.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import nbformat

from . import MASTER_NOTEBOOK
from .checks import resolve_points

NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass(frozen=True)
class Check:
    name: str  # the test function's name, e.g. "test_one_row"
    points: float
    hidden: bool
    parameters: tuple[str, ...]  # the notebook names it takes (functions and values)


@dataclass(frozen=True)
class Question:
    name: str  # e.g. "q4d"
    manual: bool  # graded by hand (the written answers)
    points: float  # the question's total
    checks: tuple[Check, ...]  # in the master's order; none for a manual question
    functions: tuple[str, ...]  # the functions students write in this question's solution
    export: bool  # its output goes into the PDF of the written answers

    @property
    def label(self) -> str:
        """How the notebook's headings name it: "4d" for q4d."""
        return self.name.removeprefix("q")

    def parameters(self) -> set[str]:
        """The notebook names its checks take (functions and values)."""
        return {name for check in self.checks for name in check.parameters}


def _first_line(cell) -> str:
    return cell.source.strip().splitlines()[0].strip() if cell.source.strip() else ""


def _marker(cell, word: str) -> bool:
    return cell.cell_type == "raw" and re.fullmatch(
        rf"#\s*{word}", _first_line(cell), flags=re.IGNORECASE
    )


def _read_check(source: str) -> tuple[str, dict, bool, tuple[str, ...]]:
    """(function name, its test config, hidden, parameters) of one test cell, as otter assign
    reads it: a first comment line with the word `hidden` makes it hidden; a
    `# BEGIN TEST CONFIG` ... `# END TEST CONFIG` block gives its own `points`, `hidden`."""
    import yaml

    lines = source.strip().splitlines()
    hidden = lines[0].lstrip().startswith("#") and bool(
        re.search(r"\bhidden\b", lines[0], flags=re.IGNORECASE)
    )
    config: dict = {}
    if re.match(r'(?:.\s*=\s*)?""?"?\s*#\s*BEGIN\s*TEST\s*CONFIG', lines[0], flags=re.IGNORECASE):
        end = next(i for i, line in enumerate(lines) if re.search(r"END\s*TEST\s*CONFIG", line))
        config = yaml.safe_load("\n".join(lines[1:end])) or {}
    function = next(node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef))
    parameters = tuple(arg.arg for arg in function.args.args)
    return function.name, config, bool(config.get("hidden", hidden)), parameters


@cache
def questions(master: Path = MASTER_NOTEBOOK) -> tuple[Question, ...]:
    """Every question of the master, in its order."""
    import yaml

    found = []
    config: dict | None = None
    in_solution = in_tests = False
    checks: list = []
    functions: list[str] = []
    for cell in nbformat.read(master, as_version=4).cells:
        if _marker(cell, r"BEGIN\s+QUESTION"):
            config = yaml.safe_load(cell.source.strip().split("\n", 1)[1]) or {}
            checks, functions = [], []
        elif _marker(cell, r"END\s+QUESTION") and config is not None:
            found.append(_question(config, checks, functions))
            config = None
        elif _marker(cell, r"BEGIN\s+SOLUTION"):
            in_solution = True
        elif _marker(cell, r"END\s+SOLUTION"):
            in_solution = False
        elif _marker(cell, r"BEGIN\s+TESTS"):
            in_tests = True
        elif _marker(cell, r"END\s+TESTS"):
            in_tests = False
        elif config is not None and cell.cell_type == "code" and in_tests:
            checks.append(_read_check(cell.source))
        elif config is not None and cell.cell_type == "code" and in_solution:
            tree = ast.parse(cell.source)
            functions += [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    return tuple(found)


def _question(config: dict, checks: list, functions: list[str]) -> Question:
    name = str(config["name"])
    manual = bool(config.get("manual", False))
    total = config.get("points")
    if isinstance(total, dict):  # otter's `points: {each: 1}`
        total = total.get("each", 1) * len(checks)
    if manual or not checks:
        points = float(total or (0 if manual else 1))
        resolved = []
    else:
        resolved = resolve_points(total, [c[1].get("points") for c in checks])
        points = round(sum(resolved), 5)
    return Question(
        name=name,
        manual=manual,
        points=points,
        checks=tuple(
            Check(function, share, hidden, parameters)
            for (function, _, hidden, parameters), share in zip(checks, resolved, strict=True)
        ),
        functions=tuple(functions),
        export=bool(config.get("export", False)),
    )


def autograded(master: Path = MASTER_NOTEBOOK) -> tuple[Question, ...]:
    return tuple(q for q in questions(master) if not q.manual)


def full_marks(master: Path = MASTER_NOTEBOOK) -> dict[str, float]:
    """Question name -> its auto-graded points, in the master's order (results.json's order)."""
    return {q.name: _number(q.points) for q in autograded(master)}


def student_functions(master: Path = MASTER_NOTEBOOK) -> dict[str, list[str]]:
    """Each function students write -> the auto-graded questions whose checks take it."""
    return {
        function: [q.name for q in autograded(master) if function in q.parameters()]
        for question in questions(master)
        for function in question.functions
    }


def _number(value: float):
    """3.0 as 3 (as otter writes whole points), 1.5 as it is."""
    return int(value) if float(value).is_integer() else value


def labels(names: list[str]) -> str:
    """Questions as the README names them: ["q4a", "q4b", "q4c"] -> "4a–c", ["q5"] -> "5",
    ["q1", "q2", "q3"] -> "1–3": a run of consecutive ones is shortened to its ends."""
    if not names:
        return ""
    parts = [re.fullmatch(r"q(\d+)([a-z]?)", name).groups() for name in names]
    first, last = parts[0], parts[-1]
    if len(parts) == 1:
        return "".join(first)
    if all(number == first[0] for number, _ in parts) and first[1]:
        return f"{first[0]}{first[1]}–{last[1]}"
    return f"{''.join(first)}–{''.join(last)}"


def number_word(count: int) -> str:
    return NUMBER_WORDS[count] if count < len(NUMBER_WORDS) else str(count)
