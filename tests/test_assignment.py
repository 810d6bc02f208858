"""The student notebook comes from the master, is up to date, and gives nothing away."""

import json
import re

import nbformat

from mnist_grader import ASSIGNMENT_DIR, MASTER_NOTEBOOK, SOLUTIONS_DIR, assign, questions

FUNCTIONS = tuple(questions.student_functions())


def test_layout():
    assert [p.name for p in ASSIGNMENT_DIR.glob("*.ipynb")] == ["mnist_first_steps.ipynb"]
    assert [p.name for p in SOLUTIONS_DIR.glob("*.ipynb")] == ["mnist_first_steps.ipynb"]
    assert (SOLUTIONS_DIR / "rubric.md").is_file()


def test_committed_assignment_is_up_to_date(dist):
    """`make assignment` must have been run after the last change to the master."""
    for repo_path, built in assign.generated_files(dist).items():
        committed = ASSIGNMENT_DIR.parent / repo_path
        assert committed.is_file(), f"{repo_path} missing: run `make assignment`"
        assert committed.read_bytes() == built.read_bytes(), (
            f"{repo_path} is stale: run `make assignment` and commit"
        )
    built_student = {
        p.relative_to(dist / "student") for p in (dist / "student").rglob("*") if p.is_file()
    }
    committed = {
        p.relative_to(ASSIGNMENT_DIR)
        for p in ASSIGNMENT_DIR.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert committed == built_student, "assignment/ holds files the build does not make"


def _master_cells():
    return nbformat.read(MASTER_NOTEBOOK, as_version=4).cells


def test_solution_markers_only_inside_raw_solution_cells():
    """Inline markers outside a raw BEGIN/END SOLUTION block are not stripped by otter: a leak."""
    inside = False
    for cell in _master_cells():
        text = cell.source.strip()
        if cell.cell_type == "raw" and text.startswith("# BEGIN SOLUTION"):
            inside = True
        elif cell.cell_type == "raw" and text.startswith("# END SOLUTION"):
            inside = False
        elif re.search(r"#\s*(BEGIN |END )?SOLUTION", cell.source):
            assert inside, f"solution marker outside a raw solution block:\n{cell.source[:200]}"


def _solution_lines() -> set[str]:
    lines, inside_block, in_raw = set(), False, False
    for cell in _master_cells():
        text = cell.source.strip()
        if cell.cell_type == "raw":
            in_raw = text.startswith("# BEGIN SOLUTION") or (
                in_raw and not text.startswith("# END SOLUTION")
            )
            continue
        if not in_raw:
            continue
        if cell.cell_type == "markdown":
            lines.update(line.strip() for line in cell.source.splitlines() if len(line) > 20)
            continue
        for line in cell.source.splitlines():
            if line.strip().startswith("# BEGIN SOLUTION"):
                inside_block = True
            elif line.strip().startswith("# END SOLUTION"):
                inside_block = False
            elif inside_block and len(line.strip()) > 8:
                lines.add(line.strip())
    return lines


def _prompt_text() -> str:
    """The master's text outside solution blocks: lines found there are not solutions."""
    text, in_raw = [], False
    for cell in _master_cells():
        if cell.cell_type == "raw":
            source = cell.source.strip()
            in_raw = source.startswith("# BEGIN SOLUTION") or (
                in_raw and not source.startswith("# END SOLUTION")
            )
        elif not in_raw:
            text.append(cell.source)
    return "\n".join(text)


def test_no_solution_line_in_the_assignment():
    prompts = _prompt_text()
    solution = {line for line in _solution_lines() if line not in prompts}
    assert len(solution) > 20, "the leak check found no solution lines: is it reading the master?"
    # What the master generates (mnist_exercise.py is support code written by hand, shared)
    for path in [*ASSIGNMENT_DIR.glob("*.ipynb"), *ASSIGNMENT_DIR.glob("tests/*.py")]:
        if path.is_file():
            text = path.read_text()
            leaked = sorted(line for line in solution if line in text)
            assert not leaked, f"{path.name} contains solution lines: {leaked[:5]}"


def test_no_hidden_check_in_the_assignment(dist):
    hidden = []
    for path in (dist / "autograder" / "tests").glob("*.py"):
        hidden += re.findall(r"hidden=True\)\ndef (\w+)", path.read_text())
    assert len(hidden) >= 5
    for path in ASSIGNMENT_DIR.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            text = path.read_text()
            assert "hidden=True" not in text, path
            assert not [name for name in hidden if name in text], path


def test_student_fills_only_function_bodies():
    nb = json.loads((ASSIGNMENT_DIR / "mnist_first_steps.ipynb").read_text())
    answer_cells = [
        c
        for c in nb["cells"]
        if "otter_answer_cell" in c["metadata"].get("tags", []) and c["cell_type"] == "code"
    ]
    code = "\n".join("".join(c["source"]) for c in answer_cells)
    for name in FUNCTIONS:
        assert f"def {name}(" in code
    assert code.count("...") == len(FUNCTIONS)
    assert "fit(" not in code and "load_mnist" not in code  # fixed cells stay outside
    fixed = [c for c in nb["cells"] if c["cell_type"] == "code" and c not in answer_cells]
    assert all(c["metadata"].get("editable") is False for c in fixed)
    assert sum("grader.check(" in "".join(c["source"]) for c in fixed) == len(
        questions.autograded()
    )


# Auto-graded questions with no hidden check, each with why (none now). A hidden check runs the
# student's function on inputs the notebook never shows, so answers typed in to pass the public
# checks cannot earn the question's points.
WITHOUT_HIDDEN_CHECK: dict[str, str] = {}


def missing_hidden_checks(master=MASTER_NOTEBOOK) -> list[str]:
    """The auto-graded questions of `master` without a hidden check that do not say why."""
    return [
        q.name
        for q in questions.autograded(master)
        if not any(c.hidden for c in q.checks) and q.name not in WITHOUT_HIDDEN_CHECK
    ]


def test_every_autograded_question_has_a_public_and_a_hidden_check():
    assert missing_hidden_checks() == [], "add a `# HIDDEN` check, or say why in the list above"
    for question in questions.autograded():
        assert any(not c.hidden for c in question.checks), f"{question.name}: no public check"
        if question.name in WITHOUT_HIDDEN_CHECK:
            assert not any(c.hidden for c in question.checks), f"{question.name} has one now"


def test_a_question_without_a_hidden_check_is_found(tmp_path):
    nb = nbformat.read(MASTER_NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith("# HIDDEN\ndef test_random_prob"):
            cell.source = cell.source.removeprefix("# HIDDEN\n")
    nbformat.write(nb, tmp_path / MASTER_NOTEBOOK.name)
    assert missing_hidden_checks(tmp_path / MASTER_NOTEBOOK.name) == ["q5"]
