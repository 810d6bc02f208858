"""What each grading child is running now, told to the batch's progress bar, so that a bar that
stands still says why: which submission waits, on what, and how long that may still take.

The child (`grade-one --progress-fd N`) writes one JSON line per step it starts in the kernel (a
cell, a check's call) with the step's time limit, and one when the step ends; the batch parent
reads each child's pipe in a thread (`Steps.follow`) and asks `Steps.waiting` what to show.
Nothing here reaches a student: it is the instructor's screen only.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass

from . import inert

# A step that has run this long is waiting out its limit, not working (a cell of the exercise
# takes seconds): from then on the bar names it.
STILL_SECONDS = 10

# --- the grading child's side ---------------------------------------------------------------------
_pipe = None


def report_to(fd: int | None) -> None:
    """Send this process's steps to `fd` (the batch's pipe); none are sent without one."""
    global _pipe
    if fd is None:
        return
    os.set_inheritable(fd, False)  # the kernel, started from here, must not get the pipe
    _pipe = os.fdopen(fd, "w", buffering=1)


def _send(message: dict) -> None:
    if _pipe is None:
        return
    try:
        _pipe.write(json.dumps(message) + "\n")
    except OSError:  # the parent stopped listening: grading goes on without the bar's notes
        pass


def started(step: str, limit_seconds: float) -> None:
    _send({"step": step, "limit": limit_seconds})


def ended() -> None:
    _send({"step": ""})


# --- the batch parent's side ----------------------------------------------------------------------
@dataclass
class _Step:
    step: str
    limit: float
    since: float  # time.monotonic() when the parent heard of it


class Steps:
    """The step each submission being graded is on, as its child last said."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now: dict[str, _Step | None] = {}

    def follow(self, name: str, pipe) -> None:
        """Read `name`'s child's lines until the pipe closes (the child ended)."""
        with self._lock:
            self._now[name] = None
        try:
            for line in pipe:
                try:
                    message = json.loads(line)
                    step = _Step(str(message["step"]), float(message.get("limit", 0)), 0.0)
                except (ValueError, KeyError, TypeError):
                    continue
                step.since = time.monotonic()
                with self._lock:
                    self._now[name] = step if step.step else None
        finally:
            with self._lock:
                self._now.pop(name, None)

    def waiting(self) -> str:
        """What the bar says while every submission being graded is on a step that has run
        STILL_SECONDS or more: each one's name, step and the most it may still take (until the
        step's limit stops it); "" otherwise."""
        now = time.monotonic()
        with self._lock:
            steps = dict(self._now)
        if not steps or any(
            step is None or now - step.since < STILL_SECONDS for step in steps.values()
        ):
            return ""
        return "waiting on " + "; ".join(
            f"{inert.name(name)}: {step.step}, up to "
            f"{max(0.0, step.limit - (now - step.since)):.0f} s more"
            for name, step in sorted(steps.items())
        )
