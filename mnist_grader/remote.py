"""The grader's calls into a kernel whose cells ran: the checks call the student's functions
here, on arguments the grader chose, each call under a time limit.

`RemoteCalls(kernel)` loads the probe (mnist_grader.probe, sent as a cell) into a
session.KernelSession, then asks it which names the notebook defines (`kinds`), reads values
(`fetch`) and calls functions (`call`, or a `RemoteFunction` standing for one). Arguments go
through the grading folder's in/, answers come back through out/, as data only
(mnist_grader.wire).
"""

from __future__ import annotations

from pathlib import Path

from . import wire
from .session import KernelGone, KernelSession
from .settings import Status

PROBE_SOURCE = (Path(__file__).parent / "probe.py").read_text()


class CallTimedOut(Exception):
    """A call into the student's code did not finish within its time limit."""

    raised_by_grader = True  # the checks report it as it is (mnist_exercise.call_student)


class RemoteCalls:
    def __init__(self, kernel: KernelSession):
        self.kernel = kernel
        self.calls = 0
        self.hung: set[str] = set()  # functions that already ran out of time once
        # What a call returned (or the student's error it raised), by the function's name and
        # a fingerprint of its arguments: several checks judge one call's result (the public
        # checks of plot_prediction all look at one figure, build_model's at one model), and the
        # kernel makes it once instead of once per check.
        self.answered: dict = {}

    def load_probe(self) -> None:
        source = (
            PROBE_SOURCE
            + f"\n__grader_probe__ = _GraderProbe({str(self.kernel.workdir.parent)!r}, globals())"
        )
        try:
            status, detail = self.kernel.run(
                source, self.kernel.limits.check_seconds, "the grader's start in the kernel"
            )
        except KernelGone:  # already lost: the log says why, and every check will repeat it
            return
        if status != "ok":
            reason = f"the grader could not reach the notebook's functions ({detail})"
            self.kernel.log.lose(Status.KERNEL_DIED, reason)

    def _next_id(self) -> int:
        self.calls += 1
        return self.calls

    def _probe(self, method: str, *args, label: str, call_id: int | None = None):
        call_id = call_id or self._next_id()
        if label in self.hung:
            raise CallTimedOut(
                f"{label} ran out of time in an earlier check, so it was not run again"
            )
        arguments = ", ".join([str(call_id), *(repr(a) for a in args)])
        status, detail = self.kernel.run(
            f"__grader_probe__.{method}({arguments})", self.kernel.limits.check_seconds, label
        )
        if status == "timeout":
            self.hung.add(label)
            seconds = self.kernel.limits.check_seconds
            raise CallTimedOut(f"{label} did not finish within {seconds} s (an endless loop?)")
        if status == "error":
            raise wire.BadAnswer(f"the grader's call failed ({detail})")
        return wire.decode_answer(self.kernel.outbox, call_id)

    def kinds(self, names: list[str]) -> dict:
        """{name: "function" | "value" | "missing"} for the names the checks ask for."""
        pairs = self._probe("kinds", sorted(names), label="the notebook")
        kinds = {name: kind for name, kind in pairs if name in names}
        if set(kinds) != set(names) or not set(kinds.values()) <= {"function", "value", "missing"}:
            raise wire.BadAnswer("the list of defined names")
        return kinds

    def fetch(self, name: str):
        return self._probe("fetch", name, label=f"reading `{name}` from your notebook")

    def call(self, name: str, args: tuple):
        key = (name, wire.fingerprint(args))
        if key in self.answered:
            kind, value = self.answered[key]
            if kind == "raised":
                raise value
            return value
        call_id = self._next_id()
        wire.encode_arguments(args, self.kernel.inbox, call_id)
        try:
            result = self._probe("call", name, label=f"your function {name}()", call_id=call_id)
        except wire.StudentError as error:
            self.answered[key] = ("raised", error)
            raise
        self.answered[key] = ("returned", result)
        return result


class RemoteFunction:
    """Stands for a student's function in the grader: calling it runs it in the sandbox."""

    def __init__(self, calls: RemoteCalls, name: str):
        self.calls, self.name = calls, name

    def __call__(self, *args):
        return self.calls.call(self.name, args)

    def __repr__(self) -> str:
        return f"<your function {self.name}>"
