"""`make bench`, third part (issue 18): a classmate's CPU time beside a kernel that starts busy
processes, each in a session of its own.

The scheduler weighs each session alike (autogroup), so four busy sessions took four shares of
the CPU against a classmate's one. Each kernel now joins a CPU cgroup of its uid's own
(mnist_grader.launcher.join_cpu_group), where the machine allows it. Measured here with the
launcher's own code, in processes that enter the sandbox as a kernel does (a session of their
own, the group, the sandbox uid): a classmate kernel's one busy thread (a kernel of a batch trains
on one thread), alone, then beside a hostile kernel's four busy sessions, without and with the
groups. Writes its section of docs/performance.md.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import time

import psutil

from mnist_grader import launcher, sandbox
from mnist_grader.batch import PACKAGE_ROOT
from tests.bench import write_section

RUNS = 3
WINDOW_SECONDS = 6
MACHINE_CPUS = sorted(os.sched_getaffinity(0))
ENTER = """
import os
from mnist_grader import launcher, sandbox
os.sched_setaffinity(0, {cpus})
os.setsid()
if {grouped} and launcher.join_cpu_group({uid}) is None:
    raise SystemExit("no CPU group on this machine")
os.setgroups([])
os.setgid(sandbox.NOGROUP)
os.setuid({uid})
"""
CLASSMATE = "while True:\n    pass\n"
HOSTILE = """
import os, time
for _ in range(4):
    if os.fork() == 0:
        os.setsid()
        while True:
            pass
time.sleep(3600)
"""


def as_kernel(uid: int, code: str, grouped: bool, cpus: list[int]) -> subprocess.Popen:
    prologue = ENTER.format(cpus=cpus, grouped=grouped, uid=uid)
    return subprocess.Popen(
        [sys.executable, "-c", prologue + code], cwd="/", env={"PYTHONPATH": str(PACKAGE_ROOT)}
    )


def cpu_seconds(uid: int) -> float:
    """User + system time of every process of `uid` so far."""
    total = 0.0
    for process in psutil.process_iter(["uids"]):
        if process.info["uids"] and process.info["uids"].real == uid:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
    return total


def window(
    classmate: int, hostile: int | None, grouped: bool, cpus: list[int]
) -> tuple[float, float]:
    """CPU seconds the classmate and the hostile kernel get in one window on `cpus`."""
    started = [as_kernel(classmate, CLASSMATE, grouped, cpus)]
    if hostile is not None:
        started.append(as_kernel(hostile, HOSTILE, grouped, cpus))
    uids = [classmate] + ([hostile] if hostile is not None else [])
    try:
        time.sleep(1)  # everything is spinning
        before = [cpu_seconds(uid) for uid in uids]
        time.sleep(WINDOW_SECONDS)
        got = [cpu_seconds(uid) - then for uid, then in zip(uids, before, strict=True)]
    finally:
        for process in started:
            process.kill()
            process.wait()
        for uid in uids:
            sandbox.sweep(uid)
    return got[0], got[1] if hostile is not None else 0.0


def main() -> None:
    if not sandbox.is_root():
        raise SystemExit("the sandbox uids need root")
    if launcher.kernel_cpu_group(sandbox.FIRST_SANDBOX_UID) is None:
        raise SystemExit("this machine has no cgroup cpu controller: nothing to compare")
    cases = {"alone": "alone, in its CPU group",
             "ungrouped": "beside 4 busy sessions, no CPU groups (as before)",
             "grouped": "beside 4 busy sessions, a CPU group per kernel"}  # fmt: skip
    places = {"one CPU": MACHINE_CPUS[-1:], f"{len(MACHINE_CPUS)} CPUs": MACHINE_CPUS}
    got: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with sandbox.lease_slots(2) as slots:
        classmate, hostile = (sandbox.slot_uid(slot) for slot in slots)
        for _ in range(RUNS):  # alternating, so that the machine's other load falls on each
            for place, cpus in places.items():
                for key in cases:
                    other = None if key == "alone" else hostile
                    measured = window(classmate, other, key != "ungrouped", cpus)
                    got.setdefault((place, key), []).append(measured)
    lines = [
        f"| on | the classmate | its CPU seconds per {WINDOW_SECONDS} s | × alone (time for "
        "the same work) | the hostile kernel's CPU seconds | runs (classmate / hostile) |",
        "|---|---|---|---|---|---|",
    ]
    for place in places:
        alone = statistics.median(c for c, _ in got[place, "alone"])
        for key, label in cases.items():
            mine = statistics.median(c for c, _ in got[place, key])
            theirs = statistics.median(h for _, h in got[place, key])
            runs = ", ".join(f"{c:.1f} / {h:.1f}" for c, h in got[place, key])
            lines.append(
                f"| {place} | {label} | {mine:.2f} | {alone / mine:.2f} | {theirs:.2f} | {runs} |"
            )
    body = (
        f"{__doc__.split(chr(10) + chr(10))[1].strip()}\n\nEverything pinned (taskset) to one "
        f"CPU, where the two kernels must share it, then to the machine's {len(MACHINE_CPUS)} "
        f"(a batch with --jobs {len(MACHINE_CPUS)}: a CPU per kernel when they share fairly). "
        f"The CPU seconds each gets in a {WINDOW_SECONDS} s window, median of {RUNS} windows "
        "per case, alternating. Other work on the machine takes its share too, and makes "
        "'alone' vary. The issue's bound: the classmate within 1.3× of alone, with a CPU per "
        "kernel.\n\n" + "\n".join(lines)
    )
    write_section("cpu_groups", "A classmate's CPU beside busy sessions (issue 18)", body)
    print(body)


if __name__ == "__main__":
    main()
