"""Where one submission's grading spends its time, phase by phase, written to grader.log.

`PhaseClock.mark(phase, kernel_pid)` logs one line per phase: the CPU seconds this grading
process spent in it, those of the kernel's process (and of the children it waited for), those of
the other children this process waited for in it (the Keras evaluator, mnist_grader.evaluator),
and the wall seconds. The first mark also counts what came before it: the interpreter's start
and the imports. The last line, `total`, is this process and every child it waited for, the
kernel included, once the kernel is gone. `make bench` reads these lines from the log of one
real graded submission (tests/bench_cold.py) for its table; an instructor reads them in
grader.log.
"""

from __future__ import annotations

import logging
import os
import re
import resource
import time
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)  # the grading child's stderr: OUT/<submission>/grader.log

LINE = re.compile(
    r"phase: (?P<phase>.*): grader (?P<grader>[\d.]+) CPU s, kernel (?P<kernel>[\d.]+) CPU s, "
    r"others (?P<others>[\d.]+) CPU s, wall (?P<wall>[\d.]+) s$"
)
TOTAL = re.compile(
    r"total: grader (?P<grader>[\d.]+) CPU s, its children (?P<children>[\d.]+) CPU s, "
    r"wall (?P<wall>[\d.]+) s$"
)


def _cpu(usage) -> float:
    return usage.ru_utime + usage.ru_stime


def _kernel_cpu(pid: int | None) -> float | None:
    """User + system seconds of the kernel's process and of the children it waited for; None
    once it is gone."""
    if pid is None:
        return None
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system + times.children_user + times.children_system


def _parent(pid: int) -> int | None:
    try:
        return psutil.Process(pid).ppid()
    except psutil.Error:
        return None


def seconds_since_start() -> float:
    """How long ago this process started: its start in clock ticks after boot (/proc/self/stat)
    against the boot clock. By hand because psutil's create_time adds the boot time, which Linux
    gives in whole seconds (/proc/stat's btime), so that a process's age comes out up to a second
    too long."""
    after_name = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    start_ticks = int(after_name[19])  # the 22nd field, starttime; the 3rd is the first here
    age = time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")
    return max(0.0, age)


class PhaseClock:
    def __init__(self):
        # The process's own start (not this object's): the first phase holds the imports.
        self.started = time.monotonic() - seconds_since_start()
        self.wall, self.cpu = self.started, 0.0
        self.children = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN))
        self.kernel: dict[int, float] = {}  # kernel pid -> its CPU seconds at the last mark
        self.our_kernels: set[int] = set()  # those that are our children (cold kernels)
        self.phases: list[tuple[str, float, float, float, float]] = []

    def mark(self, phase: str, kernel_pid: int | None = None) -> None:
        """The phase that ends now: logged, and kept in `phases` as (name, grader CPU s, kernel
        CPU s, others' CPU s, wall s). A kernel that started during the phase counts from its
        start; one of ours that was stopped and waited for is not counted again as an other."""
        now, cpu = time.monotonic(), _cpu(resource.getrusage(resource.RUSAGE_SELF))
        children = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN))
        others = children - self.children
        kernel_now = _kernel_cpu(kernel_pid)
        kernel = 0.0
        if kernel_now is not None:
            kernel = kernel_now - self.kernel.get(kernel_pid, 0.0)
            if kernel_pid not in self.kernel and _parent(kernel_pid) == os.getpid():
                self.our_kernels.add(kernel_pid)
            self.kernel[kernel_pid] = kernel_now
        for gone in [pid for pid in self.our_kernels if not psutil.pid_exists(pid)]:
            others -= self.kernel[gone]  # its CPU after the last mark stays an other's
            self.our_kernels.discard(gone)
        entry = (phase, cpu - self.cpu, kernel, max(others, 0.0), now - self.wall)
        self.phases.append(entry)
        self.wall, self.cpu, self.children = now, cpu, children
        logger.info(
            "phase: %s: grader %.3f CPU s, kernel %.3f CPU s, others %.3f CPU s, wall %.3f s",
            *entry,
        )  # LINE reads it back

    def total(self) -> None:
        """This process and every child it waited for (the kernel after it stopped)."""
        children = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN))
        grader = _cpu(resource.getrusage(resource.RUSAGE_SELF))
        wall = time.monotonic() - self.started
        logger.info(
            "total: grader %.3f CPU s, its children %.3f CPU s, wall %.3f s", grader, children, wall
        )  # TOTAL reads it back
