"""Writing grades: Gradescope's results.json per submission, gradebook.csv, a table on screen."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from . import inert
from .engine import Report

# What a batch writes at the top of OUT, beside a folder per submission: no submission's folder
# may take one of these names (batch.output_folders).
GRADEBOOK = "gradebook.csv"
DISTRIBUTION_PLOT = "score_distribution.png"
GRADESCOPE_SCORES = "gradescope_scores.csv"
CANVAS_SCORES = "canvas_scores.csv"
REPORT_HTML = "report.html"
REPORT_JSON = "report.json"
OUT_FILES = (
    GRADEBOOK,
    DISTRIBUTION_PLOT,
    GRADESCOPE_SCORES,
    CANVAS_SCORES,
    REPORT_HTML,
    REPORT_JSON,
)


# Gradescope's results.json (https://gradescope-autograders.readthedocs.io/en/latest/specs/):
# a test's visibility, and how its output is shown. Each question is two tests, its public checks
# and its hidden ones, so that the hidden ones can be held back until a moment the instructor
# chooses (`make autograder HIDDEN_VISIBILITY=...`); Gradescope then holds the total too.
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
PUBLIC_VISIBILITY = "visible"  # the public checks are in the student's notebook anyway
GRADESCOPE_HIDDEN_VISIBILITY = "after_due_date"  # the zip's default; README says why
OUTPUT_FORMAT = "md"  # each check's feedback is an indented block: Markdown shows it as code
WHEN_SHOWN = {
    "hidden": "are not shown to students",
    "after_due_date": "appear here after the due date",
    "after_published": "appear here when your instructor publishes the grades",
}


def results_json(report: Report, hidden_visibility: str = PUBLIC_VISIBILITY) -> dict:
    """Gradescope's results.json: top-level score, two test entries per question (its public
    and its hidden checks). Everything visible unless `hidden_visibility` says otherwise (local
    grading is the instructor's; the Gradescope zip holds hidden results back: hold_hidden)."""
    summary = [f"Autograded score: {report.score:g} / {report.max_score:g} ({report.status})."]
    if report.notes:
        summary.append("While running your notebook:")
        summary.extend(f"  - {note}" for note in report.notes)
    summary.append("Questions 1-3 (written answers) are graded by hand.")
    data = {
        "score": report.score,
        "execution_time": round(report.seconds, 1),
        "output": "\n".join(summary),
        "visibility": PUBLIC_VISIBILITY,
        "stdout_visibility": "hidden",  # run_autograder's output (the grader's log): instructors'
        "tests": [entry for question in report.questions for entry in _test_entries(question)],
        "extra_data": {
            "status": report.status,
            "submission": inert.name(report.submission),
            "check_seed": report.check_seed,
            "checks": check_records(report),
        },
    }
    return hold_hidden(data, hidden_visibility)


def hold_hidden(data: dict, visibility: str) -> dict:
    """The hidden checks' entries get `visibility`. Held back, the first line of the output
    (the score) gives only the public checks' score, and says when the rest appears: the total
    would give the hidden checks' result away."""
    if visibility not in VISIBILITIES:
        raise ValueError(f"visibility {visibility!r}: one of {', '.join(VISIBILITIES)}")
    public = []
    for test in data["tests"]:
        if test.get("extra_data", {}).get("hidden"):
            test["visibility"] = visibility
        else:
            public.append(test)
    data["extra_data"]["hidden_visibility"] = visibility
    if visibility != PUBLIC_VISIBILITY:
        got = sum(t["score"] for t in public)
        of = sum(t["max_score"] for t in public)
        held = sum(t["max_score"] for t in data["tests"]) - of
        first, _, rest = data["output"].partition("\n")
        status = data["extra_data"]["status"]
        first = (
            f"Public checks: {got:g} / {of:g} ({status}). The hidden checks ({held:g} points) "
            f"and your autograded total {WHEN_SHOWN[visibility]}."
        )
        data["output"] = f"{first}\n{rest}" if rest else first
    return data


def _test_entries(question) -> list[dict]:
    """A question's public checks and its hidden ones, as two entries. An all-or-nothing question
    is one entry, held back with the hidden checks: its score depends on every check."""
    if question.all_or_nothing:
        return [_test_entry(question, "public and hidden", any(c.hidden for c in question.cases))]
    entries = []
    for hidden in (False, True):
        cases = [case for case in question.cases if case.hidden == hidden]
        if cases:
            part = type(question)(question.name, cases)
            entries.append(_test_entry(part, "hidden" if hidden else "public", hidden))
    return entries


def _test_entry(question, which: str, hidden: bool) -> dict:
    return {
        "name": f"{question.name}: {which} checks",
        "score": question.score,
        "max_score": question.max_score,
        "status": "passed" if all(case.passed for case in question.cases) else "failed",
        "output": question.output(),
        "output_format": OUTPUT_FORMAT,
        "visibility": PUBLIC_VISIBILITY,
        "extra_data": {"question": question.name, "hidden": hidden},
    }


def question_of(test: dict) -> str:
    """The question a results.json test entry belongs to (an older file's entry: its name)."""
    return test.get("extra_data", {}).get("question", test["name"])


def question_scores(results: dict, key: str = "score") -> dict[str, float]:
    """question -> its score (key="max_score": its points), summed over its entries."""
    scores: dict[str, float] = {}
    for test in results.get("tests", []):
        name = question_of(test)
        scores[name] = round(scores.get(name, 0) + test[key], 4)
    return scores


def check_records(report: Report) -> list[dict]:
    """Every check's verdict and feedback record: what the class report is built from."""
    return [
        {
            "question": question.name,
            "check": case.name,
            "hidden": case.hidden,
            "passed": case.passed,
            "points": case.points,
            "message": case.message,
            "expected": case.expected,
            "got": case.got,
            "feedback": case.feedback,
        }
        for question in report.questions
        for case in question.cases
    ]


RESERVED_BYTES = 2**20  # far more than a results.json holds


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def reserve(path: Path) -> None:
    """Allocate the disk blocks that writing `path` will need, before a submission runs: where
    its writes are bounded only per file (no mount namespace), it can fill the disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(_partial(path), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        os.posix_fallocate(fd, 0, RESERVED_BYTES)
    finally:
        os.close(fd)


def write_json(data: dict, path: Path) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one. Into the
    blocks reserve() allocated, when it was called: overwriting them needs no free space. Every
    string inert (mnist_grader.inert): what the student's code returned or raised is shown by
    Gradescope and the report, and a byte that is not UTF-8 is not JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial(path)
    text = json.dumps(inert.strings(data), indent=2).encode()
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(text)
        handle.truncate()
    os.replace(partial, path)


IDENTITY_COLUMNS = ("name", "email", "sid")  # from a Gradescope export's metadata


def identity(results: dict) -> dict:
    """name / email / sid of a submission's submitters ("; " between the members of a group)."""
    people = results.get("extra_data", {}).get("submitters", [])
    return {key: inert.name("; ".join(p.get(key, "") for p in people)) for key in IDENTITY_COLUMNS}


def gradebook_row(results: dict, question_names: list[str], identity_columns=False) -> dict:
    scores = question_scores(results)
    row = {"file": inert.name(results["extra_data"]["submission"])}
    if identity_columns:
        row.update(identity(results))
    row["total"] = results["score"]
    row.update({name: scores.get(name, 0) for name in question_names})
    row["status"] = results["extra_data"]["status"]
    if identity_columns:
        row["note"] = inert.name(results["extra_data"].get("note", ""))
    return row


def gradebook_columns(question_names: list[str], identity_columns=False) -> list[str]:
    if identity_columns:
        return ["file", *IDENTITY_COLUMNS, "total", *question_names, "status", "note"]
    return ["file", "total", *question_names, "status"]


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection). File
# names and names are the students' own text, so such a cell is written with a leading
# apostrophe, which spreadsheets show as text and do not run.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_gradebook(
    rows: list[dict], question_names: list[str], path: Path, identity_columns=False
) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, gradebook_columns(question_names, identity_columns))
        writer.writeheader()
        writer.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in rows)


# Scores to upload: one row per student (a group's members each get the group's score), keyed
# by SID and email. Gradescope's column names (those of its own "Download Grades" CSV), and
# Canvas's gradebook import columns (Student, ID, SIS User ID, SIS Login ID, Section, then one
# column per assignment; ID is Canvas's own number, left blank for Canvas to match on SIS ids).
GRADESCOPE_SCORE_COLUMNS = ["Name", "SID", "Email", "Total Score", "Max Points", "Status"]
CANVAS_SCORE_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
CANVAS_ASSIGNMENT = "MNIST first steps (autograded)"


def _safe_identity(person: dict) -> tuple[str, str, str]:
    """A submitter's name, SID and email, as the score uploads write them."""
    return tuple(spreadsheet_safe(inert.name(person[key])) for key in ("name", "sid", "email"))


def write_score_uploads(graded, out: Path) -> int:
    """gradescope_scores.csv and canvas_scores.csv; returns how many students they hold."""
    people = []
    for results in graded:
        max_points = sum(test["max_score"] for test in results.get("tests", []))
        for person in results["extra_data"].get("submitters", []):
            if person.get("sid") or person.get("email"):  # nothing to key a row on otherwise
                people.append((person, results["score"], max_points, results))
    people.sort(key=lambda item: (item[0].get("sid", ""), item[0].get("email", "")))
    with (out / GRADESCOPE_SCORES).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(GRADESCOPE_SCORE_COLUMNS)
        for person, score, max_points, results in people:
            status = results["extra_data"]["status"]
            writer.writerow([*_safe_identity(person), f"{score:g}", f"{max_points:g}", status])
    with (out / CANVAS_SCORES).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*CANVAS_SCORE_COLUMNS, CANVAS_ASSIGNMENT])
        for person, score, _, _ in people:
            name, sid, email = _safe_identity(person)
            writer.writerow([name, "", sid, email, "", f"{score:g}"])
    return len(people)


def table(rows: list[dict], question_names: list[str]) -> str:
    """The gradebook as text for the terminal, every cell one inert line."""
    named = ["name"] if rows and "name" in rows[0] else []  # a Gradescope export's
    headers = ["file", *named, "total", *question_names, "status"]
    cells = [
        [f"{row[h]:g}" if isinstance(row[h], float) else inert.name(row[h]) for h in headers]
        for row in rows
    ]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def read_results(path: Path) -> dict:
    """A results.json written by a grading child; raises if it is missing or malformed."""
    data = json.loads(path.read_text())
    if not isinstance(data.get("score"), (int, float)) or not isinstance(data.get("tests"), list):
        raise ValueError(f"malformed results in {path}")
    data["extra_data"]["status"]  # noqa: B018 - raises KeyError when missing
    return data


def distribution_figure(rows: list[dict], question_names: list[str], maxima: dict):
    """How many submissions got each score: one small panel per question in a row, the total
    below across the whole width (23 scores side by side need the room to stay readable)."""
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(max(8.0, 1.9 * len(question_names)), 5.2))
    grid = fig.add_gridspec(2, len(question_names), height_ratios=[1, 1.15])
    panels = [(fig.add_subplot(grid[0, i]), name) for i, name in enumerate(question_names)]
    panels.append((fig.add_subplot(grid[1, :]), "total"))
    for ax, column in panels:
        scores = [float(row[column]) for row in rows]
        top = maxima[column]
        values = sorted({*range(int(top) + 1), *scores})
        ax.bar([f"{v:g}" for v in values], [scores.count(v) for v in values], color="tab:blue")
        ax.set_title(f"{column} (of {top:g} points)", fontsize=9)
        ax.set_xlabel("score", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.yaxis.get_major_locator().set_params(integer=True)
    panels[0][0].set_ylabel("submissions", fontsize=8)
    panels[-1][0].set_ylabel("submissions", fontsize=8)
    fig.suptitle(f"Score distribution, {len(rows)} submissions", fontsize=10)
    fig.tight_layout()
    return fig


def plot_distribution(rows: list[dict], question_names: list[str], maxima: dict, path: Path):
    """score_distribution.png: how many submissions got each score, per question and in total."""
    import matplotlib.pyplot as plt

    fig = distribution_figure(rows, question_names, maxima)
    fig.savefig(path, dpi=100)
    plt.close(fig)
