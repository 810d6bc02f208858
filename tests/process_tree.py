"""A command's cost as its whole process tree: what `make bench` measures with.

CPU seconds are user + system time of every process the command started, at any depth, the
kernel's work included: this process becomes a child subreaper (PR_SET_CHILD_SUBREAPER), so a
descendant whose parent exits without waiting for it (double-forked, or killed and left) is
handed to us, and we reap it; getrusage(RUSAGE_CHILDREN) then holds them all. A cpuacct cgroup
around the command counts the same CPU a second, independent way (the kernel's own per-group
sum), and says whether anything is still running after the command returned.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h; Python has no prctl
MEMORY_SAMPLE_SECONDS = 0.2
LEFT_RUNNING_SECONDS = 10  # how long a descendant may outlive the command before it is an error


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _cpu(usage) -> float:
    return usage.ru_utime + usage.ru_stime


def reap_orphans(deadline: float | None = None) -> int:
    """Wait for every descendant handed to this subreaper; how many there were."""
    deadline = deadline or time.monotonic() + LEFT_RUNNING_SECONDS
    reaped = 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid:
            reaped += 1
        elif time.monotonic() > deadline:
            raise RuntimeError("a process the command started is still running after it ended")
        else:
            time.sleep(0.05)


class CpuGroup:
    """A cpuacct cgroup (v1) or a cgroup v2 child of our own; None where neither can be made."""

    def __init__(self, name: str):
        self.folder, self.version = None, 0
        for version, root in (
            (1, Path("/sys/fs/cgroup/cpuacct")),
            (2, Path("/sys/fs/cgroup/unified")),
            (2, Path("/sys/fs/cgroup")),
        ):
            stat_file = "cpuacct.usage" if version == 1 else "cpu.stat"
            if (root / stat_file).exists() or (version == 2 and (root / "cgroup.procs").exists()):
                with contextlib.suppress(OSError):
                    (root / name).mkdir()
                    self.folder, self.version = root / name, version
                    return

    def seconds(self) -> float | None:
        if self.folder is None:
            return None
        if self.version == 1:
            return int((self.folder / "cpuacct.usage").read_text()) / 1e9
        for line in (self.folder / "cpu.stat").read_text().splitlines():
            if line.startswith("usage_usec "):
                return int(line.split()[1]) / 1e6
        return None

    def running(self) -> list[int]:
        if self.folder is None:
            return []
        return [int(pid) for pid in (self.folder / "cgroup.procs").read_text().split()]

    def join_prefix(self) -> list[str]:
        """argv that puts the command in this group before it execs."""
        if self.folder is None:
            return []
        procs = self.folder / "cgroup.procs"
        return ["sh", "-c", f'echo $$ > "{procs}" && exec "$@"', "sh"]

    def remove(self) -> None:
        if self.folder is not None:
            for _ in range(50):
                try:
                    self.folder.rmdir()
                    return
                except OSError:
                    time.sleep(0.1)


@dataclass
class Measured:
    wall: float
    cpu: float  # every reaped descendant (getrusage RUSAGE_CHILDREN)
    cgroup_cpu: float | None  # the same, as the cgroup counted it
    orphans: int  # descendants reaped by us, not by their parent
    peak_mb: float  # peak of the tree's summed PSS
    returncode: int


def measure(
    command: list[str], env: dict, cwd: Path | None = None, cpu: int | None = None, stdout=None
) -> Measured:
    """Run `command` (on CPU `cpu` alone, with taskset, when given) and measure its tree."""
    become_subreaper()
    group = CpuGroup(f"mnist-bench-{os.getpid()}-{time.monotonic_ns()}")
    pinned = ["taskset", "-c", str(cpu)] if cpu is not None else []
    before = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN))
    group_before = group.seconds()
    started = time.monotonic()
    try:
        child = subprocess.Popen(
            [*group.join_prefix(), *pinned, *command],
            env=env,
            cwd=cwd,
            stdout=stdout or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if stdout else subprocess.DEVNULL,
        )
        root, peak = psutil.Process(child.pid), 0
        while child.poll() is None:
            total = 0
            with contextlib.suppress(psutil.Error):
                for proc in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += proc.memory_full_info().pss
            peak = max(peak, total)
            time.sleep(MEMORY_SAMPLE_SECONDS)
        wall = time.monotonic() - started
        deadline = time.monotonic() + LEFT_RUNNING_SECONDS
        while group.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        if group.running():
            raise RuntimeError(f"{command[:3]} left processes running: {group.running()}")
        orphans = reap_orphans(deadline)
        after = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN))
        group_after = group.seconds()
    finally:
        group.remove()
    return Measured(
        wall=wall,
        cpu=after - before,
        cgroup_cpu=None if group_before is None else group_after - group_before,
        orphans=orphans,
        peak_mb=peak / 2**20,
        returncode=child.returncode,
    )
