"""Writing grades: Gradescope's results.json per submission, gradebook.csv, a table on screen."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from .engine import Report

VISIBILITY = "visible"  # students see each question's feedback (never the checks' source)


def results_json(report: Report) -> dict:
    """Gradescope's results.json: top-level score, one test entry per question."""
    summary = [f"Autograded score: {report.score:g} / {report.max_score:g} ({report.status})."]
    if report.notes:
        summary.append("While running your notebook:")
        summary.extend(f"  - {note}" for note in report.notes)
    summary.append("Questions 1-3 (written answers) are graded by hand.")
    return {
        "score": report.score,
        "execution_time": round(report.seconds, 1),
        "output": "\n".join(summary),
        "visibility": VISIBILITY,
        "tests": [
            {
                "name": question.name,
                "score": question.score,
                "max_score": question.max_score,
                "output": question.output(),
                "visibility": VISIBILITY,
            }
            for question in report.questions
        ],
        "extra_data": {
            "status": report.status,
            "submission": report.submission,
            "check_seed": report.check_seed,
            "checks": check_records(report),
        },
    }


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


def write_json(data: dict, path: Path) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(data, indent=2))
    os.replace(partial, path)


def gradebook_row(results: dict, question_names: list[str]) -> dict:
    scores = {test["name"]: test["score"] for test in results.get("tests", [])}
    return {
        "file": results["extra_data"]["submission"],
        "total": results["score"],
        **{name: scores.get(name, 0) for name in question_names},
        "status": results["extra_data"]["status"],
    }


def write_gradebook(rows: list[dict], question_names: list[str], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["file", "total", *question_names, "status"])
        writer.writeheader()
        writer.writerows(rows)


def table(rows: list[dict], question_names: list[str]) -> str:
    headers = ["file", "total", *question_names, "status"]
    cells = [
        [f"{row[h]:g}" if isinstance(row[h], float) else str(row[h]) for h in headers]
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


def plot_distribution(rows: list[dict], question_names: list[str], maxima: dict, path: Path):
    """score_distribution.png: how many submissions got each score, per question and in total."""
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    columns = [*question_names, "total"]
    fig, axes = plt.subplots(1, len(columns), figsize=(2.2 * len(columns), 2.6), sharey=True)
    for ax, column in zip(axes, columns, strict=True):
        scores = [float(row[column]) for row in rows]
        top = maxima[column]
        values = sorted({*range(int(top) + 1), *scores})
        ax.bar([f"{v:g}" for v in values], [scores.count(v) for v in values], color="tab:blue")
        ax.set_title(f"{column} (of {top:g})", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("submissions")
    fig.suptitle(f"Score distribution, {len(rows)} submissions", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
