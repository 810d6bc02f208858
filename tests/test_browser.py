"""A student's session in a real browser: JupyterLab, Debian's chromium, playwright.

The student opens assignment/mnist_first_steps.ipynb in JupyterLab, puts the reference answers
(read from solutions/, not written here) into the five answer cells, runs all cells, saves, and
sees every public `grader.check(...)` pass and the plot of question 6. Skipped when chromium,
playwright or jupyterlab is missing (failed in CI, which installs them). `pytest -m browser` runs
only this, `-m "not browser"` all but.

BROWSER_SCREENSHOT_DIR=<dir>: also copy the final screenshot (the whole notebook) there.
BROWSER_LEAVE_STARTER=top_class[,...]: leave these functions as the starter (`...`), to watch the
test fail on the check that catches it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from mnist_grader import questions
from tests.conftest import require

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "mnist_first_steps.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHECKS = tuple(questions.full_marks())
RUN_SECONDS = 900  # kernel start, TF import, one epoch on 5000 images, on 2 shared cores

pytestmark = pytest.mark.browser

# JupyterLab user settings: no "news?" toast (and no request for news); every cell attached to
# the DOM (the default windowing, contentVisibility, may leave off-screen cells unrendered).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": (
        '{"fetchNews": "false", "checkForUpdates": false}'
    ),
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": '{"windowingMode": "none"}',
}

NOTEBOOK_PANEL = ".jp-NotebookPanel"
SCROLLER = f"{NOTEBOOK_PANEL} .jp-WindowedPanel-outer"  # the notebook's scrolling element
# The input prompts of all code cells ("[ ]:", "[*]:", "[12]:") and the kernel status.
JS_PROMPTS = f"""() => [
    ...document.querySelectorAll('{NOTEBOOK_PANEL} .jp-CodeCell .jp-InputPrompt')
].map(e => e.textContent.trim())"""
JS_KERNEL_STATUS = f"""() => {{
    const e = document.querySelector('{NOTEBOOK_PANEL} .jp-Notebook-ExecutionIndicator');
    return e ? e.getAttribute('data-status') : null;
}}"""
# An editor's text as CodeMirror 6 shows it: one .cm-line per line.
JS_EDITOR_TEXT = """cell => [...cell.querySelectorAll('.jp-InputArea-editor .cm-line')]
    .map(l => l.textContent).join('\\n')"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reference_answers() -> dict[str, str]:
    """Answer cells of solutions/, by the first function each defines, markers removed."""
    answers = {}
    for cell in nbformat.read(ROOT / "solutions" / NOTEBOOK, as_version=4).cells:
        names = re.findall(r"^def (\w+)\(", cell.source, re.M)
        if cell.cell_type == "code" and names:
            lines = [
                line
                for line in cell.source.splitlines()
                if line.strip() not in ("# BEGIN SOLUTION", "# END SOLUTION")
            ]
            answers[names[0]] = "\n".join(lines)
    return answers


@pytest.fixture
def sync_api():
    """playwright's API, once chromium, jupyterlab and playwright are known to be here."""
    require(CHROMIUM.exists(), f"{CHROMIUM} is not installed (apt-get install chromium)")
    for package in ("jupyterlab", "playwright"):
        require(importlib.util.find_spec(package) is not None, f"{package} is not installed")
    from playwright import sync_api

    return sync_api


@pytest.fixture
def lab(tmp_path, data_file, sync_api):
    """JupyterLab on 127.0.0.1 serving a copy of assignment/: yields (base url, token, folder)."""
    work = tmp_path / "student"
    shutil.copytree(ROOT / "assignment", work, ignore=shutil.ignore_patterns("__pycache__"))
    home = tmp_path / "jupyter"
    for name, text in LAB_SETTINGS.items():
        path = home / "lab-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    env = {
        **os.environ,
        "MNIST_NPZ": str(data_file),  # the kernel inherits the server's environment
        "MNIST_EPOCHS": "1",
        "MNIST_TRAIN_IMAGES": "5000",
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
    }
    token, port = secrets.token_hex(16), _free_port()
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        f"--ServerApp.token={token}", "--ServerApp.ip=127.0.0.1", f"--port={port}",
        "--ServerApp.port_retries=0", f"--ServerApp.root_dir={work}",
    ]  # fmt: skip
    if os.geteuid() == 0:
        command.append("--allow-root")
    log_path = tmp_path / "jupyterlab.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the server and its kernels
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"jupyter lab exited:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer within 120 s:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield base, token, work
    finally:
        if server.poll() is None:
            os.killpg(server.pid, 15)  # the server shuts its kernels down on SIGTERM
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, 9)
                server.wait()


@pytest.fixture
def page(sync_api):
    with sync_api.sync_playwright() as p:
        # launch() gives chromium a fresh temporary profile; never `playwright install` here.
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.set_default_timeout(60_000)
            yield context.new_page()
        finally:
            browser.close()


def _find_cell(page, text: str):
    """The only code cell whose editor contains `text`."""
    found = [
        cell
        for cell in page.locator(f"{NOTEBOOK_PANEL} .jp-CodeCell").all()
        if text in cell.evaluate(JS_EDITOR_TEXT)
    ]
    assert len(found) == 1, f"{len(found)} code cells contain {text!r}"
    return found[0]


def _replace_cell_text(page, cell, source: str) -> None:
    """Select the editor's whole text and replace it, as a paste would (no auto-indent)."""
    editor = cell.locator(".jp-InputArea-editor .cm-content")
    editor.scroll_into_view_if_needed()
    editor.click()  # edit mode: Ctrl+A now selects the editor's text, not all cells
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(source)
    page.keyboard.press("Escape")  # back to command mode
    shown = cell.evaluate(JS_EDITOR_TEXT)
    assert shown == source, f"the cell shows\n{shown}\ninstead of\n{source}"


def _run_all_and_wait(page) -> list[str]:
    """Run > Run All Cells, then wait for the end of the run; returns the prompts."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    # Run All queues every code cell at once ([*]). The run is over when no [*] is left (an error
    # stops it: the cells queued after it go back to [ ]) and the kernel is idle.
    page.wait_for_function(f"() => ({JS_PROMPTS})().includes('[*]:')", timeout=30_000)
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        prompts = page.evaluate(JS_PROMPTS)
        if "[*]:" not in prompts and page.evaluate(JS_KERNEL_STATUS) == "idle":
            return prompts
        time.sleep(1)
    raise AssertionError(f"still running after {RUN_SECONDS} s: {page.evaluate(JS_PROMPTS)}")


def _screenshot(page, path: Path) -> None:
    """The whole notebook: JupyterLab scrolls inside the page, so the page grows to fit it."""
    height = page.evaluate(f"() => document.querySelector('{SCROLLER}').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": min(height + 200, 16_000)})
    page.evaluate(f"() => {{ document.querySelector('{SCROLLER}').scrollTop = 0; }}")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("BROWSER_SCREENSHOT_DIR"):
        folder = Path(os.environ["BROWSER_SCREENSHOT_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / path.name)


def test_student_runs_the_exercise_in_jupyterlab(lab, page, tmp_path):
    base, token, work = lab
    answers = _reference_answers()
    assert answers.keys() == {"get_shapes", "build_model", "top_class", "plot_prediction"}
    assert "def predict_probs(" in answers["build_model"]
    leave = {n for n in os.environ.get("BROWSER_LEAVE_STARTER", "").split(",") if n}
    times = {}
    started = time.monotonic()

    page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
    page.wait_for_function(  # every cell rendered, every code cell with its editor
        """n => document.querySelectorAll('.jp-NotebookPanel .jp-Cell').length === n
            && [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell')]
                .every(c => c.querySelector('.cm-content .cm-line'))""",
        arg=len(nbformat.read(work / NOTEBOOK, as_version=4).cells),
        timeout=120_000,
    )
    page.wait_for_function(f"() => ({JS_KERNEL_STATUS})() === 'idle'", timeout=120_000)
    times["open"] = time.monotonic() - started

    for name, source in answers.items():
        if name not in leave:
            _replace_cell_text(page, _find_cell(page, f"def {name}("), source)
    times["answer"] = time.monotonic() - started

    prompts = _run_all_and_wait(page)
    times["run"] = time.monotonic() - started
    page.keyboard.press("Control+s")  # File > Save Notebook: the tab loses its dirty mark
    page.wait_for_function(
        "() => !document.querySelector('.lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-dirty')"
    )

    shot = tmp_path / "student_notebook.png"
    outputs = {}
    try:
        for check in CHECKS:
            cell = _find_cell(page, f'grader.check("{check}")')
            texts = cell.locator(".jp-OutputArea-output").all_inner_texts()
            outputs[check] = "\n".join(texts).strip()
        images = _find_cell(page, "fig = plot_prediction(").locator(".jp-OutputArea-output img")
        widths = images.evaluate_all("imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
    finally:
        _screenshot(page, shot)
    times["total"] = time.monotonic() - started
    print(f"\nscreenshot: {shot}\nseconds: " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))

    ran = [bool(re.fullmatch(r"\[\d+\]:", p)) for p in prompts]
    if not all(ran):
        last = max((i for i, r in enumerate(ran) if r), default=0)
        shown = page.locator(f"{NOTEBOOK_PANEL} .jp-CodeCell").nth(last)
        raise AssertionError(
            f"Run All stopped: prompts {prompts}; the last cell that ran shows:\n"
            + "\n".join(shown.locator(".jp-OutputArea-output").all_inner_texts())[-3000:]
        )
    # otter 7 shows "q4a passed! 🎉" (a random emoji), or "q4a results:" and each failing case.
    failed = {c: text for c, text in outputs.items() if not text.startswith(f"{c} passed!")}
    assert not failed, "checks that did not pass:\n" + "\n\n".join(
        f"--- {c}\n{text}" for c, text in failed.items()
    )
    assert widths and all(w > 0 for w in widths), f"no plot image in question 6's cell: {widths}"

    saved = [c.source for c in nbformat.read(work / NOTEBOOK, as_version=4).cells]
    for name, source in answers.items():
        assert name in leave or source in saved, f"the saved notebook lacks the answer {name}"
