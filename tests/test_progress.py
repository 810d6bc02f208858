"""The batch's progress bar never stands still without saying why: while every submission being
graded waits on a step past STILL_SECONDS, the bar names it (inert), the step, and how long it
may still take (mnist_grader.progress)."""

import json
import os
import re
import shutil
import threading
import time
from dataclasses import replace

import nbformat

from mnist_grader import batch, inert, progress
from tests import bank
from tests.bank import hostile


def test_inert_shows_control_characters_as_escapes():
    assert inert.name("Zoë Müller_q1") == "Zoë Müller_q1"
    assert inert.name("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert inert.name("done\rfake 100%") == "done\\rfake 100%"
    assert inert.name("abc\u202etxt.ipynb") == "abc\\u202etxt.ipynb"  # right-to-left override
    assert inert.name("a\x00b\nc") == "a\\x00b\\nc"
    assert all(c.isprintable() for c in inert.name("".join(map(chr, range(0x2100)))))


class _Child:
    """A real pipe, as a grading child's progress pipe, followed by Steps in a thread."""

    def __init__(self, steps: progress.Steps, name: str):
        read_end, write_end = os.pipe()
        self.writer = os.fdopen(write_end, "w", buffering=1)
        self.reader = os.fdopen(read_end)
        self.thread = threading.Thread(target=steps.follow, args=(name, self.reader))
        self.thread.start()

    def send(self, message: dict) -> None:
        self.writer.write(json.dumps(message) + "\n")

    def end(self) -> None:
        self.writer.close()
        self.thread.join(timeout=5)
        self.reader.close()


def _until(condition, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the pipe's line never arrived"
        time.sleep(0.05)


def test_the_bar_names_the_waiting_only_when_every_worker_waits(monkeypatch):
    monkeypatch.setattr(progress, "STILL_SECONDS", 1)
    steps = progress.Steps()
    first, second = _Child(steps, "first"), _Child(steps, "second")
    try:
        first.send({"step": "cell 5", "limit": 30})
        time.sleep(1.2)
        assert steps.waiting() == ""  # the second has not said what it runs: it is starting
        second.send({"step": "your function top_class()", "limit": 10})
        _until(lambda: steps._now.get("second") is not None)
        assert steps.waiting() == ""  # the second's step has just begun: the bar will move
        time.sleep(1.2)
        shown = steps.waiting()
        found = re.fullmatch(
            r"waiting on first: cell 5, up to (\d+) s more; "
            r"second: your function top_class\(\), up to (\d+) s more",
            shown,
        )
        assert found, shown
        left, left_second = map(int, found.groups())
        assert left <= 28 and left_second <= 9, shown  # counting down from 30 and from 10
        second.send({"step": ""})  # its call returned
        _until(lambda: steps._now.get("second") is None)
        assert steps.waiting() == ""
        second.send({"step": "cell 9", "limit": 30})
        second.end()  # that child ended: it is no longer waited on
        assert "second" not in steps._now
        assert steps.waiting().startswith("waiting on first: cell 5, up to ")
        first.send("not a step")  # a malformed line is ignored, not fatal
        first.send({"step": ""})
        _until(lambda: steps._now.get("first") is None)
    finally:
        first.end()
        second.end()
    assert steps.waiting() == "" and steps._now == {}


def test_a_hanging_notebook_is_named_on_the_bar_with_its_countdown(settings, tmp_path, capsys):
    """The bank's notebook whose cell loops forever, under a name with control characters, graded
    with a short cell limit: the bar says which submission waits, on which cell, and counts down
    to the cell's interrupt; the name appears only as escapes."""
    bank.build(tmp_path / "built", only=["hangs_at_top_level"])
    built = tmp_path / "built" / "hangs_at_top_level.ipynb"
    cells = nbformat.read(built, as_version=4).cells
    hanging = next(n for n, c in enumerate(cells, 1) if c.source == hostile.FOREVER)
    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copy(built, folder / "hangs\x1b[2J\r.ipynb")
    limits = replace(settings, total_seconds=150)
    capsys.readouterr()
    rows = batch.grade_batch(folder, tmp_path / "out", limits, jobs=1, progress=True)
    shown = capsys.readouterr().err
    assert rows[0]["status"] == "graded", rows
    notes = re.findall(
        r"grading \(waiting on hangs\\x1b\[2J\\r: cell (\d+), up to (\d+) s more\)", shown
    )
    countdown = [int(left) for cell, left in notes if int(cell) == hanging]
    assert len(countdown) >= 3, shown
    assert countdown == sorted(countdown, reverse=True) and countdown[0] > countdown[-1]
    assert countdown[0] <= limits.cell_seconds - progress.STILL_SECONDS, countdown
    assert "\x1b" not in shown  # the name's escape sequence never reaches the terminal
    assert "waiting on" not in shown.rsplit("\r", 1)[-1], "the note stayed after the wait"
