"""The class report: what a class got wrong, from the results.json files of a batch alone.

`write(out)` reads every `out/<submission>/results.json` (so it also works after a regrade, or
on results copied from elsewhere) and writes:

- `out/report.json`: the numbers, for other tools;
- `out/report.html`: one self-contained page (the plot inline as SVG; no script, which its
  Content-Security-Policy forbids; no network):
  per question and check how many passed; for each check the wrong results grouped by what was
  returned, with the feedback and links to those submissions' pages; the score distribution;
  the grading statuses with their files; the time per submission;
- `out/<submission>/feedback.html`: what that submission was told, for the report's links.

Wrong results are grouped by the feedback record's `got` (what the student's code returned,
as the student was shown it); a check that failed without one (an error raised, a name not
defined) is grouped by the first line of its feedback. Only graded submissions are counted in
the checks: one that could not be run fails every check for one reason, listed under statuses.

File names and everything the student's code returned or raised are the student's text: shown
inert (mnist_grader.inert) and HTML-escaped, and a link to a submission's page is its folder
percent-encoded after "./", so no name can be read as a scheme (`javascript:`).
"""

from __future__ import annotations

import html
import io
import json
import os
import statistics
import urllib.parse
from collections import Counter
from pathlib import Path

from . import inert
from . import results as results_module

GRADED = "graded"
STATUS_ORDER = ["graded", "unreadable", "out of time", "kernel died", "grader error"]
# Statuses of submissions that ran in a kernel: the others took no time worth a median.
RAN = ("graded", "out of time", "kernel died")
GROUPS_SHOWN = 5  # per check in the page; the rest fold away (all of them are in report.json)
SLOWEST_SHOWN = 5
FEEDBACK_PAGE = "feedback.html"


def read_all(out: Path, folders: list[str] | None = None) -> list[dict]:
    """Every submission's results.json under `out` (or those of `folders`), with its folder
    name, in folder order."""
    found = []
    if folders is None:
        paths = list(out.glob("*/results.json"))
    else:
        paths = [out / name / "results.json" for name in folders]
    for path in sorted(paths, key=lambda p: _natural(p.parent.name)):
        try:
            data = results_module.read_results(path)
        except (OSError, ValueError, KeyError):
            continue  # not one of ours: the gradebook has a row for every submission anyway
        data["folder"] = path.parent.name
        found.append(data)
    return found


def _natural(text: str):
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _who(data: dict) -> str:
    people = data["extra_data"].get("submitters") or []
    names = [p.get("name") or p.get("email") or p.get("sid") for p in people]
    return ", ".join(n for n in names if n) or data["folder"]


def _group_key(check: dict) -> str:
    if check.get("got"):
        return check["got"]
    lines = (check.get("feedback") or "").strip().splitlines()
    return lines[0] if lines else "(no feedback)"


def _most_common(values) -> str:
    counted = Counter(v for v in values if v)
    return counted.most_common(1)[0][0] if counted else ""


def summarize(submissions: list[dict], notes: list[str] = ()) -> dict:
    """report.json's content: the numbers the page shows."""
    graded = [s for s in submissions if s["extra_data"]["status"] == GRADED]
    questions = _questions(submissions, graded)
    statuses: dict[str, list] = {}
    for data in submissions:
        statuses.setdefault(data["extra_data"]["status"], []).append(_link(data))
    ordered = sorted(statuses, key=lambda s: (STATUS_ORDER + [s]).index(s))
    ran = [s for s in submissions if s["extra_data"]["status"] in RAN]
    seconds = [float(s.get("execution_time", 0.0)) for s in ran]
    slowest = sorted(submissions, key=lambda s: -float(s.get("execution_time", 0.0)))
    totals = [float(s["score"]) for s in submissions]
    return {
        "submissions": len(submissions),
        "graded": len(graded),
        "max_score": sum(q["max_score"] for q in questions),
        "mean_score": round(statistics.fmean(totals), 2) if totals else 0.0,
        "median_score": statistics.median(totals) if totals else 0.0,
        "notes": list(notes),
        "questions": questions,
        "scores": _distributions(submissions, questions),
        "statuses": {status: statuses[status] for status in ordered},
        "time": {
            "median_seconds": round(statistics.median(seconds), 1) if seconds else 0.0,
            "slowest": [
                {**_link(s), "seconds": float(s.get("execution_time", 0.0))}
                for s in slowest[:SLOWEST_SHOWN]
            ],
        },
    }


def _link(data: dict) -> dict:
    return {
        "folder": data["folder"],
        "file": data["extra_data"].get("submission", ""),
        "who": _who(data),
        "page": f"{data['folder']}/{FEEDBACK_PAGE}",
    }


def _questions(submissions: list[dict], graded: list[dict]) -> list[dict]:
    """Per question: its checks in order, each with its pass count and its wrong results."""
    questions: dict[str, dict] = {}
    for data in submissions:  # the layout (questions, checks, points) of any submission
        for name, max_score in results_module.question_scores(data, "max_score").items():
            questions.setdefault(name, {"name": name, "max_score": max_score, "checks": {}})
        for check in data["extra_data"].get("checks", []):
            checks = questions[check["question"]]["checks"]
            checks.setdefault(
                check["check"],
                {
                    "check": check["check"],
                    "hidden": check["hidden"],
                    "points": check["points"],
                    "passed": 0,
                    "failed": 0,
                    "wrong": {},
                },
            )
    for data in graded:
        scores = results_module.question_scores(data)
        for name, question in questions.items():
            question.setdefault("scores", []).append(scores.get(name, 0))
        for check in data["extra_data"].get("checks", []):
            entry = questions[check["question"]]["checks"][check["check"]]
            if check["passed"]:
                entry["passed"] += 1
                continue
            entry["failed"] += 1
            entry["wrong"].setdefault(_group_key(check), []).append((check, data))
    for question in questions.values():
        scores = question.pop("scores", [])
        question["mean_score"] = round(statistics.fmean(scores), 2) if scores else 0.0
        question["full_marks"] = sum(score == question["max_score"] for score in scores)
        question["checks"] = [_finish(check) for check in question["checks"].values()]
    return list(questions.values())


def _finish(entry: dict) -> dict:
    groups = []
    for key, members in entry.pop("wrong").items():
        checks = [check for check, _ in members]
        groups.append(
            {
                "got": key,
                "returned": bool(checks[0].get("got")),
                "count": len(members),
                "message": _most_common(c.get("message") for c in checks),
                "expected": _most_common(c.get("expected") for c in checks),
                "feedback": checks[0].get("feedback", ""),
                "submissions": [_link(data) for _, data in members],
            }
        )
    groups.sort(key=lambda g: (-g["count"], g["got"]))
    entry["graded"] = entry["passed"] + entry["failed"]
    entry["wrong_results"] = groups
    return entry


def _distributions(submissions: list[dict], questions: list[dict]) -> dict:
    """score -> how many submissions, per question and in total (as strings, for JSON)."""
    columns = {q["name"]: q["max_score"] for q in questions}
    found = {}
    for column in [*columns, "total"]:
        values = [
            float(s["score"])
            if column == "total"
            else results_module.question_scores(s).get(column, 0.0)
            for s in submissions
        ]
        counted = Counter(values)
        found[column] = {f"{score:g}": counted[score] for score in sorted(counted)}
    return found


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222;
       line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.number { text-align: right; white-space: nowrap; }
code { background: #f5f5f5; padding: 0 .2em; }
.check { margin: 1em 0 1.5em 0; }
.check h4 { margin: .2em 0; font-size: 1.05em; }
.kind { font-size: .8em; padding: .05em .4em; border-radius: .3em; background: #e8eef8; }
.kind.hidden { background: #f8ece0; }
.barbox { display: inline-block; width: 8em; height: .7em; background: #e55;
          margin-right: .4em; vertical-align: middle; }
.bar { display: block; height: 100%; background: #4a8; }
table.groups { width: 100%; table-layout: fixed; }
table.groups col.got { width: 22%; } table.groups col.count { width: 11%; }
table.groups col.feedback { width: 37%; } table.groups col.who { width: 30%; }
pre { white-space: pre-wrap; }
td code.got { word-break: break-word; }
pre, td, code { overflow-wrap: anywhere; }
table.overview { width: 100%; table-layout: fixed; }
table.overview col.question { width: 7%; } table.overview col.check { width: 28%; }
table.overview col.kind { width: 8%; } table.overview col.passed { width: 9%; }
table.overview td.top { overflow: hidden; white-space: nowrap; text-overflow: ellipsis; }
.all-passed { color: #276; }
.who a { margin-right: .6em; }
.message { white-space: pre-wrap; }
figure svg { max-width: 100%; height: auto; }
"""


# Nothing in the pages runs or loads: no script at all, styles only from the page itself, images
# only inline. A name that slipped through as markup still could not run.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'"
)


def _head(title: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">\n'
        f"<title>{_e(title)}</title>\n<style>{STYLE}</style></head><body>"
    )


def _e(text) -> str:
    return html.escape(inert.text(text), quote=True)


def _href(page: str) -> str:
    """A link to a file under OUT: a relative path that cannot be read as a scheme."""
    return "./" + urllib.parse.quote(os.fsencode(page))


def _anchor(name: str) -> str:
    return "#" + urllib.parse.quote(os.fsencode(name))


def _links(members: list[dict]) -> str:
    return " ".join(
        f'<a href="{_href(m["page"])}" title="{_e(m["file"])}">{_e(m["who"])}</a>' for m in members
    )


def _check_html(question: str, check: dict) -> str:
    kind = "hidden" if check["hidden"] else "public"
    graded = check["graded"]
    share = check["passed"] / graded if graded else 0.0
    parts = [
        f'<section class="check" data-check="{_e(question)}/{_e(check["check"])}">',
        f'<h4>{_e(check["check"])} <span class="kind {kind}">{kind}</span> '
        f"<small>({check['points']:g} point{'s' if check['points'] != 1 else ''})</small></h4>",
        f'<div><span class="barbox"><span class="bar" style="width:{share * 100:.0f}%"></span>'
        f'</span><span class="passed">passed by {check["passed"]} of {graded}</span></div>',
    ]
    groups = check["wrong_results"]
    if not groups:
        if graded:
            parts.append('<p class="all-passed">Every graded submission passed.</p>')
        parts.append("</section>")
        return "\n".join(parts)
    rows = [_group_row(group) for group in groups]
    header = (
        '<colgroup><col class="got"><col class="count"><col class="feedback"><col class="who">'
        "</colgroup><tr><th>what was returned</th><th>submissions</th><th>feedback</th>"
        "<th>who</th></tr>"
    )
    parts.append(f'<table class="groups">{header}{"".join(rows[:GROUPS_SHOWN])}</table>')
    if len(rows) > GROUPS_SHOWN:
        rest = len(rows) - GROUPS_SHOWN
        parts.append(
            f"<details><summary>{rest} more group{'s' if rest != 1 else ''}</summary>"
            f'<table class="groups">{header}{"".join(rows[GROUPS_SHOWN:])}</table></details>'
        )
    parts.append("</section>")
    return "\n".join(parts)


def _group_row(group: dict) -> str:
    if group["message"]:
        feedback = _e(group["message"])
        if group["expected"]:
            feedback += f"<br>expected: <code>{_e(group['expected'])}</code>"
    else:
        feedback = _e(group["feedback"])
    if group["returned"]:
        shown = f'<code class="got">{_e(group["got"])}</code>'
    else:  # nothing was returned to show: the first line of the feedback says what happened
        shown = f'<em class="got">{_e(group["got"])}</em>'
    return (
        f'<tr class="group" data-count="{group["count"]}">'
        f"<td>{shown}</td>"
        f'<td class="number count">{group["count"]}</td>'
        f'<td class="message">{feedback}</td>'
        f'<td class="who">{_links(group["submissions"])}</td></tr>'
    )


def _plot_svg(submissions: list[dict], summary: dict) -> str:
    """The score distribution as inline SVG (the same figure as score_distribution.png)."""
    import matplotlib.pyplot as plt

    question_names = [q["name"] for q in summary["questions"]]
    maxima = {q["name"]: q["max_score"] for q in summary["questions"]}
    maxima["total"] = summary["max_score"]
    rows = []
    for data in submissions:
        scores = results_module.question_scores(data)
        rows.append({**{n: scores.get(n, 0) for n in question_names}, "total": data["score"]})
    fig = results_module.distribution_figure(rows, question_names, maxima)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # inline: without the XML declaration and doctype


def render(summary: dict, plot_svg: str = "") -> str:
    out = [
        _head("Class report"),
        "<h1>Class report</h1>",
        f'<p class="summary">{summary["submissions"]} submissions, {summary["graded"]} graded; '
        f"total score: mean {summary['mean_score']:g}, median {summary['median_score']:g} "
        f"of {summary['max_score']:g} (auto-graded points).</p>",
    ]
    if summary["notes"]:
        out.append("<ul class='notes'>")
        out += [f"<li>{_e(note)}</li>" for note in summary["notes"]]
        out.append("</ul>")
    out.append('<nav><a href="#checks">Checks</a> · <a href="#scores">Scores</a> · ')
    out.append('<a href="#statuses">Grading statuses</a> · <a href="#time">Time</a></nav>')

    out.append('<h2 id="checks">What the class got wrong, check by check</h2>')
    out.append(
        "<p>Counts are over the graded submissions. Wrong results are grouped by what the code "
        "returned; each group links to the feedback of the submissions in it.</p>"
    )
    out.append(_overview(summary))
    for question in summary["questions"]:
        out.append(
            f'<h3 id="{_e(question["name"])}">{_e(question["name"])} '
            f"<small>(mean {question['mean_score']:g} of {question['max_score']:g}; full marks: "
            f"{question['full_marks']} of {summary['graded']})</small></h3>"
        )
        out += [_check_html(question["name"], check) for check in question["checks"]]

    out.append('<h2 id="scores">Scores</h2>')
    if plot_svg:
        out.append(f"<figure>{plot_svg}</figure>")
    out.append(_distribution_table(summary))

    out.append('<h2 id="statuses">Grading statuses</h2>')
    out.append("<table><tr><th>status</th><th>submissions</th><th>which</th></tr>")
    for status, members in summary["statuses"].items():
        which = _links(members) if status != GRADED else f"{len(members)} submissions"
        out.append(
            f'<tr class="status" data-status="{_e(status)}"><td>{_e(status)}</td>'
            f'<td class="number">{len(members)}</td><td class="who">{which}</td></tr>'
        )
    out.append("</table>")

    time = summary["time"]
    out.append('<h2 id="time">Time per submission</h2>')
    out.append(
        f"<p>Median of the submissions that ran: {time['median_seconds']:g} s. Slowest:</p><ol>"
    )
    out += [
        f'<li><a href="{_href(s["page"])}">{_e(s["who"])}</a>: {s["seconds"]:g} s</li>'
        for s in time["slowest"]
    ]
    out.append("</ol></body></html>")
    return "\n".join(out)


def _overview(summary: dict) -> str:
    """One line per check: how many passed, and its most common wrong result."""
    rows = []
    for question in summary["questions"]:
        for check in question["checks"]:
            groups = check["wrong_results"]
            top = ""
            if groups:  # one line, cut short with "…" where it is long: the groups show it all
                got = _e(groups[0]["got"])
                shown = f"<code>{got}</code>" if groups[0]["returned"] else f"<em>{got}</em>"
                top = f"({groups[0]['count']}) {shown}"
            kind = "hidden" if check["hidden"] else "public"
            name = question["name"]
            rows.append(
                f'<tr><td><a href="{_anchor(name)}">{_e(name)}</a></td>'
                f"<td>{_e(check['check'])}</td><td>{kind}</td>"
                f'<td class="number">{check["passed"]} / {check["graded"]}</td>'
                f'<td class="top">{top}</td></tr>'
            )
    return (
        '<table class="overview"><colgroup><col class="question"><col class="check">'
        '<col class="kind"><col class="passed"><col class="top"></colgroup>'
        "<tr><th>question</th><th>check</th><th>kind</th><th>passed</th>"
        "<th>most common wrong result (submissions)</th></tr>" + "".join(rows) + "</table>"
    )


def _distribution_table(summary: dict) -> str:
    rows = []
    for column, counts in summary["scores"].items():
        cells = ", ".join(f"{score}: {count}" for score, count in counts.items())
        rows.append(f"<tr><td>{_e(column)}</td><td>{_e(cells)}</td></tr>")
    return (
        "<details><summary>The same as numbers (score: submissions)</summary>"
        f"<table>{''.join(rows)}</table></details>"
    )


def feedback_page(data: dict) -> str:
    """What one submission was told: the summary and each question's checks."""
    people = data["extra_data"].get("submitters") or []
    who = "; ".join(
        " ".join(filter(None, [p.get("name"), f"<{p['email']}>" if p.get("email") else ""]))
        + (f" (SID {p['sid']})" if p.get("sid") else "")
        for p in people
    )
    parts = [
        _head(f"{data['folder']}: feedback"),
        f'<p><a href="../{results_module.REPORT_HTML}">back to the class report</a> · '
        '<a href="./results.json">results.json</a></p>',
        f"<h1>{_e(data['folder'])}</h1>",
    ]
    if who:
        parts.append(f'<p class="submitters">{_e(who)}</p>')
    parts.append(
        f"<p>File: <code>{_e(data['extra_data'].get('submission', ''))}</code>; status: "
        f"<strong>{_e(data['extra_data']['status'])}</strong>; score {data['score']:g}.</p>"
    )
    if data["extra_data"].get("note"):
        parts.append(f"<p>Note: {_e(data['extra_data']['note'])}</p>")
    parts.append(f"<pre>{_e(data.get('output', ''))}</pre>")
    anchored = set()  # each question's first entry (its public checks) carries its anchor
    for test in data["tests"]:
        question = results_module.question_of(test)
        anchor = "" if question in anchored else f' id="{_e(question)}"'
        anchored.add(question)
        parts.append(
            f"<h2{anchor}>{_e(test['name'])}: {test['score']:g} / {test['max_score']:g}</h2>"
        )
        parts.append(f"<pre>{_e(test.get('output', ''))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write(out: Path, notes: list[str] | None = None, folders: list[str] | None = None) -> dict:
    """report.json, report.html and each submission's feedback.html, from out/*/results.json.

    notes: about the batch as a whole (an export without metadata, say); None keeps those of
    the report being rebuilt. folders: the batch's submissions (not those an earlier batch
    left in `out`); None: every folder with a results.json.
    """
    if notes is None:
        try:
            notes = json.loads((out / results_module.REPORT_JSON).read_text()).get("notes", [])
        except (OSError, ValueError, AttributeError):
            notes = []
    submissions = read_all(out, folders)
    summary = summarize(submissions, notes)
    (out / results_module.REPORT_JSON).write_text(json.dumps(inert.strings(summary), indent=1))
    for data in submissions:
        (out / data["folder"] / FEEDBACK_PAGE).write_text(feedback_page(data), encoding="utf-8")
    # a distribution of one is no use, and loading matplotlib is not free
    plot = _plot_svg(submissions, summary) if len(submissions) > 1 else ""
    (out / results_module.REPORT_HTML).write_text(render(summary, plot), encoding="utf-8")
    return summary
