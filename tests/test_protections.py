"""Each protection of the sandbox, proven alone and in seconds: a child process takes a sandbox
uid and the limits the kernel's launcher sets (mnist_grader.launcher.set_limits), then tries the
one thing that protection must stop. Without the protection, each of these would succeed on this
machine, so each test fails when its protection is removed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import psutil
import pytest

from mnist_grader import sandbox
from mnist_grader.batch import PACKAGE_ROOT

pytestmark = pytest.mark.skipif(not sandbox.is_root(), reason="sandbox uids need root")

MB = 2**20
GENEROUS = dict(memory_bytes=4096 * MB, cpu_seconds=60, max_processes=64, max_file_bytes=64 * MB)


@pytest.fixture
def uid():
    """A sandbox uid no other grading run holds now; everything it left is swept after."""
    with sandbox.lease_slots(1) as slots:
        uid = sandbox.slot_uid(slots[0])
        yield uid
        sandbox.sweep(uid)


def run_as(uid: int, code: str, timeout: float = 60, **limits) -> subprocess.CompletedProcess:
    """`code` in a new Python that dropped to `uid` under `limits` (GENEROUS where not given)."""
    prologue = f"""
import os
from mnist_grader import launcher, sandbox
launcher.set_limits(**{ {**GENEROUS, **limits}!r})
os.setgroups([])
os.setgid(sandbox.NOGROUP)
os.setuid({uid})
"""
    return subprocess.run(
        [sys.executable, "-c", prologue + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
        env={"PYTHONPATH": str(PACKAGE_ROOT), "PATH": "/usr/bin:/bin"},
    )


def test_memory_beyond_the_address_space_limit_is_refused(uid):
    asked = 1024 * MB  # well inside this machine's memory: only the limit can refuse it
    assert psutil.virtual_memory().available > 4 * asked
    ran = run_as(
        uid,
        f"""
        try:
            block = bytearray({asked})
            print("allocated")
        except MemoryError:
            print("refused")
        """,
        memory_bytes=512 * MB,
    )
    assert ran.stdout.strip() == "refused", ran.stderr


def test_cpu_time_beyond_the_limit_ends_the_process(uid):
    ran = run_as(uid, "while True: pass", timeout=30, cpu_seconds=1)
    assert ran.returncode in (-signal.SIGXCPU, -signal.SIGKILL), ran


def test_processes_beyond_the_limit_are_refused(uid):
    ran = run_as(
        uid,
        """
        import os, time
        started = 0
        try:
            for _ in range(40):
                if os.fork() == 0:
                    os.close(1), os.close(2)  # the test reads our output until it closes
                    time.sleep(60)
                    os._exit(0)
                started += 1
            print("forked", started)
        except BlockingIOError:
            print("refused after", started)
        """,
        max_processes=8,
    )
    assert ran.stdout.startswith("refused after"), ran.stdout + ran.stderr


def test_a_file_beyond_the_size_limit_is_refused(uid):
    folder = Path(tempfile.mkdtemp(prefix="mnist-fsize-", dir="/tmp"))
    os.chown(folder, uid, sandbox.NOGROUP)
    ran = run_as(
        uid,
        f"""
        try:
            with open({str(folder / "big")!r}, "wb") as handle:
                handle.write(b"x" * {2 * MB})
            print("written")
        except OSError as error:
            print("refused", error.errno)
        """,
        max_file_bytes=1 * MB,
    )
    shutil.rmtree(folder, ignore_errors=True)
    assert ran.stdout.strip() == "refused 27", ran.stderr  # EFBIG


def test_a_process_left_behind_is_killed_by_the_sweep(uid):
    """A leftover that lives until it is killed: in a session of its own, ignoring SIGHUP and
    SIGTERM. The test waits for its death, not for a time."""
    ran = run_as(
        uid,
        """
        import os, signal, subprocess, sys
        child = subprocess.Popen(
            [sys.executable, "-c",
             "import signal, time\\n"
             "signal.signal(signal.SIGHUP, signal.SIG_IGN)\\n"
             "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
             "while True: time.sleep(1)"],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        print(child.pid)
        """,
    )
    leftover = psutil.Process(int(ran.stdout))
    try:
        assert leftover.is_running() and leftover.uids().real == uid
        assert sandbox.sweep(uid) >= 1
        leftover.wait(timeout=10)  # raises TimeoutExpired if the sweep left it alive
    finally:
        if leftover.is_running():
            leftover.kill()
