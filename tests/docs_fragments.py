"""The facts the README and docs repeat, written into them from their one source (`make docs`).

Each repeated fact sits between `<!-- name -->` and `<!-- /name -->` (an HTML comment, so
Markdown shows only the text between): the questions and their points (from the master notebook,
mnist_grader/questions.py), the grader's default limits (mnist_grader/settings.py) and the
accuracy bar of each dataset (the master's mnist_exercise.py). `python -m tests.docs_fragments`
rewrites every file that holds one; tests/test_docs.py fails when a committed file is stale or
names a fragment that does not exist.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from mnist_grader import MASTER_DIR, batch, questions
from mnist_grader.settings import Settings, flag_settings

ROOT = Path(__file__).resolve().parent.parent
GENERATED_WHOLE = {"bank.md", "mutants.md", "performance.md"}  # written whole by other tools
FILES = [
    ROOT / "README.md",
    *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in GENERATED_WHOLE),
    ROOT / "solutions" / "rubric.md",
]
FRAGMENT = re.compile(r"<!-- ([a-z0-9_:-]+) -->(.*?)<!-- /\1 -->", re.DOTALL)


def _points(value: float) -> str:
    return f"{value:g}"


def _numbers(names) -> str:
    """The questions' numbers as a range: q4a..q6 -> "4–6"."""
    numbers = sorted({int(re.match(r"q(\d+)", name).group(1)) for name in names})
    return str(numbers[0]) if len(numbers) == 1 else f"{numbers[0]}–{numbers[-1]}"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def functions_text() -> str:
    """`get_shapes` (4a–c), `build_model` and `predict_probs` (4d), ...: functions asked for
    in the same questions are named together."""
    groups: list[tuple[list[str], list[str]]] = []
    for function, asked_in in questions.student_functions().items():
        if groups and groups[-1][1] == asked_in:
            groups[-1][0].append(function)
        else:
            groups.append(([function], asked_in))
    return ", ".join(
        f"{_and([f'`{f}`' for f in names])} ({questions.labels(asked_in)})"
        for names, asked_in in groups
    )


def points_text() -> str:
    auto = questions.autograded()
    manual = [q for q in questions.questions() if q.manual]
    each = {c.points for q in auto for c in q.checks}
    per_check = "one point per check" if each == {1} else "points per check as the master sets"
    total = sum(q.points for q in auto)
    by_hand = sum(q.points for q in manual)
    return (
        ", ".join(f"{q.name} {_points(q.points)}" for q in auto)
        + f" ({_points(total)}, auto-graded, {per_check}, public and hidden); "
        + f"{_q_range(manual)} {_points(by_hand)} points by hand "
        + "(`solutions/rubric.md`)"
    )


def _q_range(asked: list) -> str:
    """Q1–Q3 (the written questions' names in the notebook and on Gradescope)."""
    names = [f"Q{q.label}" for q in asked]
    return names[0] if len(names) == 1 else f"{names[0]}–{names[-1]}"


def written_questions_text() -> str:
    """The hand-graded assignment's questions: the written ones, then those shown for reference."""
    manual = [q for q in questions.questions() if q.manual]
    shown = [q for q in questions.questions() if q.export and not q.manual]
    items = [f"Q{manual[0].label} ({_points(manual[0].points)} points)"]
    items += [f"Q{q.label} ({_points(q.points)})" for q in manual[1:]]
    items += [
        f"Q{q.label} (0 points: its output, for reference; its points come from the autograder)"
        for q in shown
    ]
    return f"{questions.number_word(len(items))} questions: {_and(items)}"


def limits_table() -> str:
    rows = ["| flag | default | what it limits or sets |", "|---|---|---|"]
    for setting in flag_settings():
        flag = "--" + setting.name.replace("_", "-")
        unit = setting.metadata.get("unit", "")
        default = (
            "off"
            if setting.type == "bool"
            else f"{setting.default} {unit.removesuffix('s') if setting.default == 1 else unit}"
        )
        rows.append(f"| `{flag}` | {default} | {setting.metadata['help']} |")
    return "\n\n" + "\n".join(rows) + "\n\n"


def _exercise():
    from mnist_grader import engine

    return engine.exercise_module(MASTER_DIR)


def fragments() -> dict[str, str]:
    auto = questions.autograded()
    manual = [q for q in questions.questions() if q.manual]
    defaults = {f.name: f.default for f in fields(Settings) if f in flag_settings()}
    total_seconds = defaults["total_seconds"]
    found = {
        "functions": f"{questions.number_word(len(questions.student_functions()))} functions "
        f"where you see `...`: {functions_text()}",
        "function-count": questions.number_word(len(questions.student_functions())),
        "points": points_text(),
        "autograded-total": _points(sum(q.points for q in auto)),
        "autograded-numbers": _numbers(q.name for q in auto),
        "manual-total": _points(sum(q.points for q in manual)),
        "manual-numbers": _numbers(q.name for q in manual),
        "manual-questions": _q_range(manual),
        "written-questions": written_questions_text(),
        "limits": limits_table(),
        "budget-minutes": f"{total_seconds / 60:g}",
        "deadline-minutes": f"{-(-(total_seconds + batch.CHILD_GRACE_SECONDS) // 60)}",
    }
    for name, value in defaults.items():
        found[f"default:{name}"] = str(value)
    for dataset, info in _exercise().DATASETS.items():
        found[f"accuracy-bar:{dataset}"] = f"{info.min_accuracy:.0%}".replace("%", " %")
    return found


def rewrite(text: str, values: dict[str, str]) -> str:
    """`text` with every fragment's content replaced by its value (KeyError: an unknown name)."""
    return FRAGMENT.sub(lambda m: f"<!-- {m[1]} -->{values[m[1]]}<!-- /{m[1]} -->", text)


def used_names(text: str) -> list[str]:
    return [name for name, _ in FRAGMENT.findall(text)]


def main() -> None:
    values = fragments()
    for path in FILES:
        text = path.read_text()
        new = rewrite(text, values)
        if new != text:
            path.write_text(new)
            print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
