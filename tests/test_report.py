"""The class report: built from results.json files alone, grouped by what was returned.

The first tests write results.json files the way the grader does (results.results_json of a
Report) for a made-up class, with no kernel; the last ones read the report of the whole graded
bank and find its known mistakes in the groups.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import unicodedata
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from mnist_grader import batch, report, results
from mnist_grader.checks import CaseResult, QuestionResult
from mnist_grader.engine import Report
from tests import bank
from tests.conftest import json_strings

ROOT = Path(__file__).resolve().parent.parent
TEN = "The label set's length is the number of images, not of classes."


def shapes_question(label_got: str | None, error: str | None = None) -> QuestionResult:
    """q4b with one public and one hidden check; label_got None: both pass."""
    public = CaseResult("label shape", 1.0, True, False)
    if error:
        public = CaseResult(
            "label shape",
            1.0,
            False,
            False,
            f"Your code raised an error when the check called it:\n  {error}",
        )
    elif label_got:
        public = CaseResult(
            "label shape",
            1.0,
            False,
            False,
            f"{TEN}\n  expected: (60000,)\n  got:      {label_got}",
            TEN,
            "(60000,)",
            label_got,
        )
    hidden = CaseResult("label shape other arrays", 1.0, True, True)
    return QuestionResult("q4b", [public, hidden])


def top_question(passed: bool) -> QuestionResult:
    case = CaseResult("first test image", 2.0, passed, False)
    if not passed:
        case = CaseResult(
            "first test image",
            2.0,
            False,
            False,
            "Wrong class.\n  got:      3",
            "Wrong class.",
            "",
            "3",
        )
    return QuestionResult("q5", [case])


def write_class(out: Path) -> None:
    """Seven submissions: two answer (10,), one (28,), one raises, one a hostile string,
    one passes, one unreadable file."""
    cases = {
        "alice": ("(10,)", None, True, 7.0),
        "bob": ("(10,)", None, False, 9.5),
        "carol": ("(28,)", None, True, 6.0),
        "dave": (None, "ValueError: no shapes", True, 30.0),
        "erin": ("<script>alert(1)</script>", None, True, 8.0),
        "frank": (None, None, True, 6.5),
    }
    for name, (got, error, top, seconds) in cases.items():
        questions = [shapes_question(got, error), top_question(top)]
        data = results.results_json(Report(f"{name}.ipynb", "graded", questions, [], seconds))
        results.write_json(data, out / name / "results.json")
    broken = [
        QuestionResult(q.name, [CaseResult(c.name, c.points, False, c.hidden, "not a notebook")
                                for c in q.cases])
        for q in [shapes_question(None), top_question(True)]
    ]  # fmt: skip
    data = results.results_json(Report("gina.ipynb", "unreadable", broken, [], 0.1))
    results.write_json(data, out / "gina" / "results.json")


@pytest.fixture
def class_out(tmp_path) -> Path:
    out = tmp_path / "grades"
    write_class(out)
    report.write(out)
    return out


def test_counts_and_groups(class_out):
    summary = json.loads((class_out / "report.json").read_text())
    assert summary["submissions"] == 7 and summary["graded"] == 6
    q4b = summary["questions"][0]
    assert q4b["name"] == "q4b" and q4b["max_score"] == 2 and q4b["full_marks"] == 1
    label, hidden = q4b["checks"]
    assert (label["check"], label["hidden"], label["passed"], label["graded"]) == (
        "label shape", False, 1, 6
    )  # fmt: skip
    assert (hidden["hidden"], hidden["passed"], hidden["wrong_results"]) == (True, 6, [])
    groups = [
        (g["got"], g["count"], [m["folder"] for m in g["submissions"]])
        for g in label["wrong_results"]
    ]
    assert groups == [
        ("(10,)", 2, ["alice", "bob"]),
        ("(28,)", 1, ["carol"]),
        ("<script>alert(1)</script>", 1, ["erin"]),
        ("Your code raised an error when the check called it:", 1, ["dave"]),
    ]
    ten = label["wrong_results"][0]
    assert (ten["message"], ten["expected"]) == (TEN, "(60000,)")
    assert ten["submissions"][0]["page"] == "alice/feedback.html"
    q5 = summary["questions"][1]["checks"][0]
    assert [(g["got"], g["count"]) for g in q5["wrong_results"]] == [("3", 1)]


def test_statuses_time_and_scores(class_out):
    summary = json.loads((class_out / "report.json").read_text())
    assert {s: [m["folder"] for m in ms] for s, ms in summary["statuses"].items()} == {
        "graded": ["alice", "bob", "carol", "dave", "erin", "frank"],
        "unreadable": ["gina"],
    }
    assert summary["time"]["median_seconds"] == 7.5  # gina (unreadable, 0.1 s) did not run
    assert [s["folder"] for s in summary["time"]["slowest"]] == [
        "dave", "bob", "erin", "alice", "frank"
    ]  # fmt: skip
    assert summary["scores"]["total"] == {"0": 1, "1": 1, "3": 4, "4": 1}
    assert summary["scores"]["q4b"] == {"0": 1, "1": 5, "2": 1}


def test_page_is_self_contained_escaped_and_its_links_resolve(class_out):
    page = (class_out / "report.html").read_text()
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing from the network
    assert "<svg" in page  # the score plot, inline
    links = re.findall(r'href="([^"#]+)"', page)
    assert "./alice/feedback.html" in links and "./gina/feedback.html" in links
    for link in links:
        assert (class_out / link).is_file(), link
    feedback = (class_out / "erin" / "feedback.html").read_text()
    assert "<script" not in feedback and 'href="../report.html"' in feedback
    assert "&lt;script&gt;" in feedback


# --------------------------------------------------------------------------------------------
# Hostile names and answers: inert in every page, links that stay links to files
# --------------------------------------------------------------------------------------------

SCHEME_NAME = "javascript:alert(document.body.innerText)"  # a file name cannot hold a slash
RTL_OVERRIDE = "\u202e"
# What a function returned, as a student can make it: a terminal escape that retitles the
# window, a right-to-left override, and a long token with nowhere to break.
HOSTILE_GOT = "\x1b]0;pwned\x07\x1b[2J" + RTL_OVERRIDE + "gnp.exe " + "7" * 3000
ESCAPE_FOLDER = "\x1b]0;pwned\x07\nforged"  # as a file name: ESC, BEL, a newline


def write_hostile_class(out: Path) -> list[str]:
    """The made-up class plus two submissions named to attack the report (a scheme, terminal
    escapes), which returned HOSTILE_GOT; returns their folders, as a batch names them."""
    write_class(out)
    folders = batch.output_folders([SCHEME_NAME, ESCAPE_FOLDER])
    for folder in folders:
        questions = [shapes_question(HOSTILE_GOT), top_question(False)]
        data = results.results_json(Report(f"{folder}.ipynb", "graded", questions, [], 5.0))
        results.write_json(data, out / folder / "results.json")
    return folders


class _Links(HTMLParser):
    """Every <a href> of a page, and its Content-Security-Policy."""

    def __init__(self):
        super().__init__()
        self.hrefs, self.policy = [], ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and "href" in attrs:
            self.hrefs.append(attrs["href"])
        if tag == "meta" and (attrs.get("http-equiv") or "").lower() == "content-security-policy":
            self.policy = attrs["content"]


def page_links(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text())
    return parser


def test_no_name_becomes_a_scheme_and_no_page_may_run_script(tmp_path):
    """A notebook named `javascript:….ipynb` made its link a script: every link of the report
    and of each feedback page is now a relative path ("./", percent-encoded) or a fragment, it
    leads to a file that exists, and every page forbids script."""
    out = tmp_path / "grades"
    scheme_folder, _ = write_hostile_class(out)
    assert scheme_folder == SCHEME_NAME  # a folder may have that name; the link may not
    report.write(out)
    pages = [out / "report.html", *sorted(out.glob("*/feedback.html"))]
    assert len(pages) == 10
    to_scheme_folder = 0
    for page in pages:
        found = page_links(page)
        assert found.policy, f"{page}: no Content-Security-Policy"
        policy = dict(part.strip().split(" ", 1) for part in found.policy.split(";"))
        assert policy["default-src"] == "'none'" and "script-src" not in policy, page
        assert found.hrefs, page
        for href in found.hrefs:
            assert urlparse(href).scheme == "" and href.startswith(("./", "../", "#")), href
            target = href.split("#")[0]
            if target:
                assert (page.parent / unquote(target)).is_file(), href
                to_scheme_folder += unquote(target) == f"./{SCHEME_NAME}/feedback.html"
    assert to_scheme_folder == 2  # from its wrong results in q4b and in q5


def test_student_text_is_inert_in_results_and_pages(tmp_path):
    """What the code returned (ESC, U+202E, a 3000-character token) is spelled out in
    results.json; and in report.json and every page even when a results.json holds the
    characters themselves (written by an older grader, copied from elsewhere)."""
    out = tmp_path / "grades"
    scheme_folder, escape_folder = write_hostile_class(out)
    assert escape_folder == "\\x1b]0;pwned\\x07\\nforged"
    written = out / scheme_folder / "results.json"
    _assert_inert("".join(json_strings(json.loads(written.read_text()))), "results.json")
    checks = json.loads(written.read_text())["extra_data"]["checks"]
    assert checks[0]["got"].startswith("\\x1b]0;pwned\\x07\\x1b[2J\\u202egnp.exe 777")

    raw = results.results_json(
        Report("raw.ipynb", "graded", [shapes_question(HOSTILE_GOT), top_question(False)], [])
    )
    written.write_text(json.dumps(raw))  # the characters themselves, as JSON escapes
    report.write(out)
    _assert_inert(
        "".join(json_strings(json.loads((out / "report.json").read_text()))), "report.json"
    )
    for page in [out / "report.html", out / scheme_folder / "feedback.html"]:
        _assert_inert(page.read_text(), page.name)
    page = (out / "report.html").read_text()
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\u202egnp.exe 777" in page  # shown, spelled out


def _assert_inert(text: str, where: str) -> None:
    """No control character but newline and tab, no bidirectional control, in `text`."""
    bad = {
        f"U+{ord(c):04X}"
        for c in text
        if (unicodedata.category(c) == "Cc" and c not in "\n\t")
        or unicodedata.bidirectional(c)
        in ("LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI")
    }
    assert not bad, f"{where}: {sorted(bad)}"


# File names as students can choose them: OUT's own files, a byte that is not UTF-8, terminal
# escapes and a newline, a right-to-left override, a scheme. Empty files are refused unread;
# "{" is read by a grading child and found not to be a notebook. No kernel starts.
HOSTILE_FILES = {
    b"gradebook.csv.ipynb": b"",
    b"report.html.ipynb": b"{",
    b"caf\xe9.ipynb": b"{",
    b"\x1b]0;pwned\x07\nforged 22 22.ipynb": b"{",
    "\u202eevil.ipynb".encode(): b"",
    b"javascript:alert(1).ipynb": b"",
}
SHOWN = {  # each file as the gradebook, the table and the report name it
    "gradebook.csv.ipynb",
    "report.html.ipynb",
    "caf\\xe9.ipynb",
    "\\x1b]0;pwned\\x07\\nforged 22 22.ipynb",
    "\\u202eevil.ipynb",
    "javascript:alert(1).ipynb",
}


def test_no_file_name_stops_the_batch_or_reaches_the_terminal(tmp_path, settings):
    """gradebook.csv.ipynb and report.html.ipynb took OUT's own names (IsADirectoryError: no
    gradebook, no report), café in Latin-1 stopped the gradebook (UnicodeEncodeError), an ESC
    or a newline in a name reached the terminal. Now every file has its row and its folder,
    every output is written, and each name is shown inert."""
    folder = tmp_path / "submissions"
    folder.mkdir()
    for name, data in HOSTILE_FILES.items():
        with open(os.path.join(os.fsencode(folder), name), "wb") as handle:
            handle.write(data)
    out = tmp_path / "out"
    rows = batch.grade_batch(folder, out, settings, progress=False, warm=False)

    assert {row["file"] for row in rows} == SHOWN
    assert {row["status"] for row in rows} == {"unreadable"}
    with (out / results.GRADEBOOK).open(encoding="utf-8") as handle:
        assert {row["file"] for row in csv.DictReader(handle)} == SHOWN
    for name in (results.GRADEBOOK, results.REPORT_HTML, results.REPORT_JSON):
        assert (out / name).is_file(), name
    folders = [p for p in out.iterdir() if p.is_dir()]
    assert len(folders) == len(HOSTILE_FILES)
    assert all((p / "results.json").is_file() for p in folders)
    assert not {p.name for p in folders} & set(results.OUT_FILES)
    assert json.loads((out / results.REPORT_JSON).read_text())["submissions"] == 6

    question_names = [q for q in bank.FULL_MARKS]
    table = results.table(rows, question_names)
    _assert_inert(table, "the table")
    assert len(table.splitlines()) == 1 + len(HOSTILE_FILES)  # no forged row
    for path in out.glob("*/grader.log"):  # the grading children's, naming the file
        _assert_inert(path.read_bytes().decode("utf-8"), path.parent.name)
    logs = "".join(p.read_text() for p in out.glob("*/grader.log"))
    assert "caf\\xe9.ipynb" in logs and "\\x1b]0;pwned\\x07\\nforged" in logs


def test_the_report_command_rebuilds_it_from_results_alone(class_out):
    (class_out / "report.html").unlink()
    (class_out / "report.json").unlink()
    done = subprocess.run(
        [sys.executable, "-m", "mnist_grader", "report", str(class_out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((class_out / "report.json").read_text())["graded"] == 6
    assert (class_out / "report.html").is_file()


def test_a_batch_reports_only_its_own_submissions(class_out):
    """An earlier batch's results left in OUT are not this batch's class."""
    mine = ["alice", "bob", "carol", "dave", "erin", "frank", "gina"]
    (class_out / "old_run").mkdir()
    (class_out / "old_run" / "results.json").write_text(
        (class_out / "bob/results.json").read_text()
    )
    assert report.write(class_out, folders=mine)["submissions"] == 7
    assert report.write(class_out)["submissions"] == 8  # the rebuild command reads every folder


def test_score_plot_labels_do_not_overlap(tmp_path):
    """The total's tick labels (one per point, and 0) each keep their own room (they ran into
    each other)."""
    import matplotlib.pyplot as plt

    total = sum(bank.FULL_MARKS.values())
    rows = [{**bank.FULL_MARKS, "total": total}, {**{q: 0 for q in bank.FULL_MARKS}, "total": 0}]
    maxima = {**bank.FULL_MARKS, "total": total}
    fig = results.distribution_figure(rows, list(bank.FULL_MARKS), maxima)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        boxes = [label.get_window_extent(renderer) for label in ax.get_xticklabels()]
        for left, right in zip(boxes, boxes[1:], strict=False):
            assert left.x1 < right.x0, ax.get_title()
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# The graded bank's report: its known mistakes, found in the groups
# --------------------------------------------------------------------------------------------


def bank_groups(graded_bank) -> dict:
    """(question, check) -> {what was returned: [bank cases]} from the bank's report.json."""
    summary = json.loads((graded_bank / "report.json").read_text())
    return {
        (question["name"], check["check"]): {
            group["got"]: sorted(m["folder"] for m in group["submissions"])
            for group in check["wrong_results"]
        }
        for question in summary["questions"]
        for check in question["checks"]
    }


def question_groups(graded_bank, question: str) -> dict[str, set]:
    """What was returned -> the bank cases that returned it, over all checks of `question`
    (by value, not by check name: the checks' names and messages may be reworded)."""
    found: dict[str, set] = {}
    for (name, _), groups in bank_groups(graded_bank).items():
        if name == question:
            for got, cases in groups.items():
                found.setdefault(got, set()).update(cases)
    return found


@pytest.mark.parametrize(
    "question, got, case",
    [
        ("q4a", "(28, 28, 60000)", "fails_q4a_q4c_reversed_shapes"),
        ("q4a", "(60000, 28, 28)", "fails_hidden_q4a_q4b_q4c_hardcoded_shapes"),
        ("q4a", "None", "untouched_starter"),
        ("q4b", "(10,)", "fails_q4b_label_length_10"),
        ("q4c", "(28, 28, 10000)", "fails_q4a_q4c_reversed_shapes"),
        ("q4d", "'linear'", "fails_q4d_logits_without_softmax"),
        ("q4d", "5", "fails_q4d_five_output_units"),
        ("q4d", "an array of shape (20000, 10) (float32)", "fails_q4d_predicts_training_set"),
        ("q4b", "10", "fails_q4b_label_count_as_int"),
        ("q4d", "'SGD'", "fails_q4d_sgd_optimizer"),
        ("q5", "array([0, 1, 0, 0, 2, 4, 0, 0, 0, 0])", "fails_q5_argmax_axis0"),
        ("q5", "7", "fails_q5_always_seven"),
        ("q6", "no bars", "fails_q6_no_bars"),
        ("q6", "None", "fails_q6_returns_nothing"),
    ],
)
def test_bank_report_groups_its_known_mistakes(graded_bank, question, got, case):
    groups = question_groups(graded_bank, question)
    assert case in groups.get(got, set()), f"{question}: {sorted(groups)}"


def test_bank_report_counts(graded_bank):
    summary = json.loads((graded_bank / "report.json").read_text())
    graded = [c for c in bank.ALL_CASES if c.status == "graded"]
    assert summary["submissions"] == len(bank.ALL_CASES) and summary["graded"] == len(graded)
    everyone = set()
    for question in summary["questions"]:
        expected_full = sum(
            bank.expected_scores(c)[question["name"]] == question["max_score"] for c in graded
        )
        assert question["full_marks"] == expected_full, question["name"]
        for check in question["checks"]:
            assert check["passed"] + check["failed"] == len(graded)
            assert sum(g["count"] for g in check["wrong_results"]) == check["failed"]
            everyone |= {m["folder"] for g in check["wrong_results"] for m in g["submissions"]}
    assert "passes_all" not in everyone and "fails_q4b_label_length_10" in everyone
    statuses = {s: {m["folder"] for m in ms} for s, ms in summary["statuses"].items()}
    for case in bank.ALL_CASES:
        assert case.name in statuses[case.status]
    assert len(summary["time"]["slowest"]) == 5


def test_an_all_or_nothing_question_is_one_entry_held_with_the_hidden_checks():
    """Its points depend on its hidden checks too: shown apart, its public entry would give the
    hidden result away. A question scored check by check is two entries, each its own score."""
    public, hidden = CaseResult("shape", 1.0, True, False), CaseResult("other", 1.0, False, True)
    questions = [
        QuestionResult("q4a", [public, hidden], all_or_nothing=True),
        QuestionResult("q4b", [public, hidden]),
    ]
    data = results.results_json(Report("a.ipynb", "graded", questions, []), "after_published")
    entries = {t["name"]: (t["score"], t["max_score"], t["visibility"]) for t in data["tests"]}
    assert entries == {
        "q4a: public and hidden checks": (0.0, 2.0, "after_published"),
        "q4b: public checks": (1.0, 1.0, "visible"),
        "q4b: hidden checks": (0.0, 1.0, "after_published"),
    }
    assert results.question_scores(data) == {"q4a": 0.0, "q4b": 1.0}
    assert data["output"].startswith("Public checks: 1 / 1 (graded). The hidden checks (3 points)")
