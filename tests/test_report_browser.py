"""The class report of the graded bank, opened from disk in Debian's chromium (playwright).

It must show the bank's known mistakes with their counts, every link must lead to a file that
exists, a group's link must open that submission's feedback, and the page must fetch nothing.
Marker `browser` (skipped without chromium/playwright, failed in CI). The screenshot is kept
in the test's folder, and copied to BROWSER_SCREENSHOT_DIR when set.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

import pytest

from tests.test_browser import page, sync_api  # noqa: F401 - fixtures: chromium via playwright

pytestmark = pytest.mark.browser

# (check section's question, what was returned, a bank case in that group)
KNOWN = [
    ("q4a", "(28, 28, 60000)", "fails_q4a_q4c_reversed_shapes"),
    ("q4b", "(10,)", "fails_q4b_label_length_10"),
    ("q4d", "linear", "fails_q4d_logits_without_softmax"),
    ("q5", "array([0, 1, 0, 0, 2, 4, 0, 0, 0, 0])", "fails_q5_argmax_axis0"),
    ("q6", "no bars", "fails_q6_no_bars"),
]


def _file_of(url: str) -> Path:
    parsed = urlparse(url)
    assert parsed.scheme == "file", url
    return Path(unquote(parsed.path))


def test_report_of_the_bank_in_chromium(graded_bank, page, tmp_path):  # noqa: F811
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    report = graded_bank / "report.html"
    page.goto(report.as_uri())
    assert page.locator("h1").inner_text() == "Class report"
    # a check's less common groups are folded away: unfold them, as an instructor would
    for summary in page.locator("details > summary").all():
        summary.click()

    for question, got, case in KNOWN:
        rows = page.locator(f'section[data-check^="{question}/"] tr.group').filter(
            has=page.locator(".got", has_text=got)
        )
        texts = [rows.nth(i).inner_text() for i in range(rows.count())]
        assert any(case in text for text in texts), f"{question} {got}: {texts}"
        row = rows.filter(has_text=case).first
        assert row.is_visible()
        count = int(row.locator("td.count").inner_text())
        assert count == row.locator("td.who a").count() >= 1

    statuses = {
        row.get_attribute("data-status"): row.inner_text()
        for row in page.locator("tr.status").all()
    }
    assert (
        "empty_file" in statuses["unreadable"] and "exits_in_three_cells" in statuses["kernel died"]
    )
    assert page.locator("figure svg").first.is_visible()  # the score plot

    hrefs = page.locator("a[href]").evaluate_all("links => links.map(a => a.href)")
    files = {_file_of(h.split("#")[0]) for h in hrefs}
    assert len(files) > 10
    for path in files:
        assert path.is_file(), path

    shot = tmp_path / "class_report.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("BROWSER_SCREENSHOT_DIR"):
        folder = Path(os.environ["BROWSER_SCREENSHOT_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, folder / shot.name)
    print(f"\nscreenshot: {shot}")

    # a group's link opens that submission's feedback, which links back
    question, got, case = KNOWN[1]
    section = page.locator(f'section[data-check^="{question}/"]').filter(
        has=page.locator(".got", has_text=got)
    )
    section.locator("td.who a", has_text=case).first.click()
    page.wait_for_load_state()
    assert _file_of(page.url) == graded_bank / case / "feedback.html"
    body = page.locator("body").inner_text()
    assert case in body and "FAILED" in body and got in body
    page.locator("a", has_text="back to the class report").click()
    page.wait_for_load_state()
    assert _file_of(page.url) == report

    assert all(url.startswith(("file:", "data:")) for url in requests), requests


def test_hostile_names_and_answers_in_chromium(page, tmp_path):  # noqa: F811
    """A made-up class with a submission named `javascript:…` and one with terminal escapes in
    its name, which returned a right-to-left override and a 3000-character token: the policy
    blocks nothing the page uses (the plot, the styles), the long answer stays in its column,
    and the hostile names' links open their feedback pages from disk."""
    from mnist_grader import report
    from tests.test_report import SCHEME_NAME, write_hostile_class

    out = tmp_path / "grades"
    scheme_folder, escape_folder = write_hostile_class(out)
    (out / "oscar").mkdir()  # a third: the long answer is the most common, in the overview
    shutil.copy(out / scheme_folder / "results.json", out / "oscar" / "results.json")
    report.write(out)
    console = []
    page.on("console", lambda message: console.append(message.text))
    page.goto((out / "report.html").as_uri())
    assert page.locator("figure svg").first.bounding_box()["height"] > 100  # the plot shows
    assert page.locator("section.check").count() > 0
    assert not [text for text in console if "Content Security Policy" in text], console

    body = page.evaluate("document.documentElement.clientWidth")
    overview = page.locator("table.overview").bounding_box()
    assert overview["x"] + overview["width"] <= body, (overview, body)
    cell = page.locator("table.overview td.top").filter(has_text="gnp.exe").first
    assert cell.evaluate("td => td.scrollWidth > td.clientWidth")  # cut short with an ellipsis
    groups = page.locator("table.groups").first.bounding_box()
    assert groups["x"] + groups["width"] <= body

    for folder in (scheme_folder, escape_folder):
        link = page.locator(f'td.who a[href*="{quote(folder)}"]').first
        link.click()
        page.wait_for_load_state()
        assert _file_of(page.url) == out / folder / "feedback.html"
        assert page.locator("h1").inner_text() == folder
        page.go_back()
    assert scheme_folder == SCHEME_NAME
