"""Each protection of the sandbox, proven alone and in seconds: a child process takes a sandbox
uid and the limits the kernel's launcher sets (mnist_grader.launcher.set_limits), then tries the
one thing that protection must stop. Without the protection, each of these would succeed on this
machine, so each test fails when its protection is removed."""

from __future__ import annotations

import contextlib
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


def _as_uid(uid: int, code: str, private_tmp: Path | None, limits: dict) -> list[str]:
    """The argv of a new Python that drops to `uid` under `limits` (GENEROUS where not given),
    then runs `code`; private_tmp (a folder for the kernel): first, the private temporary
    folders a kernel gets where the machine allows mount namespaces (the launcher's own code)."""
    mounts = ""
    if private_tmp:
        mounts = f"""
from pathlib import Path
assert launcher._private_mounts(Path({str(private_tmp)!r}), {uid}, 16), "no mount namespace"
"""
    prologue = f"""
import os
from mnist_grader import launcher, sandbox
{mounts}
launcher.set_limits(**{ {**GENEROUS, **limits}!r})
os.setgroups([])
os.setgid(sandbox.NOGROUP)
os.setuid({uid})
"""
    return [sys.executable, "-c", prologue + textwrap.dedent(code)]


SANDBOX_ENV = {"PYTHONPATH": str(PACKAGE_ROOT), "PATH": "/usr/bin:/bin"}


@contextlib.contextmanager
def kernel_folder(private_tmp: bool):
    """A folder for a kernel's private mounts, or None for a kernel that shares /tmp."""
    if not private_tmp:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="mnist-test-kernel-", dir=sandbox.work_root()) as tmp:
        yield Path(tmp)


def run_as(
    uid: int, code: str, timeout: float = 60, private_tmp: bool = False, **limits
) -> subprocess.CompletedProcess:
    """`code` run as `uid` (see _as_uid), to its end."""
    with kernel_folder(private_tmp) as folder:
        return subprocess.run(
            _as_uid(uid, code, folder, limits),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/",
            env=SANDBOX_ENV,
        )


@contextlib.contextmanager
def started_as(uid: int, code: str, private_tmp: bool = False, **limits):
    """`code` run as `uid` (see _as_uid) in the background while the block runs; its output
    in pipes. Killed at the end of the block."""
    with kernel_folder(private_tmp) as folder:
        process = subprocess.Popen(
            _as_uid(uid, code, folder, limits),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd="/",
            env=SANDBOX_ENV,
        )
        try:
            yield process
        finally:
            process.kill()
            process.communicate()


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


@pytest.fixture
def two_uids():
    """Two sandbox uids, as two kernels of one batch graded side by side."""
    with sandbox.lease_slots(2) as slots:
        uids = [sandbox.slot_uid(slot) for slot in slots]
        yield uids
        for uid in uids:
            sandbox.sweep(uid)


DEEP_FOLDER = """
import os
os.chdir({top!r})
for _ in range({depth}):
    os.mkdir("d", 0o777)
    os.chmod("d", 0o777)  # world-writable: every uid's sweep walks into it
    os.chdir("d")
open("bottom", "w").write("left")
"""


def test_a_folder_thousands_of_levels_deep_is_swept(two_uids):
    """A world-writable folder 3000 levels deep in /tmp: the sweep of another uid walks it (it
    could write there) and leaves it; the sweep of its uid removes all of it, so the slot is
    clean for the next submission. A recursive walk raised RecursionError in both."""
    owner, other = two_uids
    top = Path(tempfile.mkdtemp(prefix="mnist-deep-", dir="/tmp"))
    top.chmod(0o777)
    try:
        made = run_as(owner, DEEP_FOLDER.format(top=str(top), depth=3000))
        assert made.returncode == 0, made.stderr
        sandbox.sweep(other)
        assert (top / "d").is_dir() and sandbox.leftovers(other) == []
        assert sandbox.leftovers(owner) == [str(top / "d")]  # listed once, not level by level
        sandbox.sweep(owner)
        assert list(top.iterdir()) == [] and sandbox.leftovers(owner) == []
    finally:
        shutil.rmtree(top, ignore_errors=True)


# The race of issue 18: a kernel keeps swapping a world-writable folder, where its classmate's
# kernel left files, with a link to a folder of root's whose files have the same names, while
# root sweeps that classmate's uid (renameat2's RENAME_EXCHANGE swaps the two names atomically).
SWAPPER = """
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
os.mkdir({race!r}, 0o777)
os.chmod({race!r}, 0o777)
os.chdir({race!r})
os.mkdir("W", 0o777)
os.chmod("W", 0o777)
os.symlink({targets!r}, "L")
print("ready", flush=True)
deadline = time.monotonic() + {seconds}
while time.monotonic() < deadline:
    libc.renameat2(-100, b"W", -100, b"L", 2)  # AT_FDCWD, RENAME_EXCHANGE
"""
VICTIM = """
import os, time
deadline = time.monotonic() + 2
while True:  # the folder, whichever name it has now (never through the link)
    try:
        folder = os.open({race!r} + "/W", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        break
    except OSError:
        if time.monotonic() > deadline:  # not in this kernel's /tmp (a private one)
            raise SystemExit(0)
for n in range({count}):
    os.close(os.open(f"f{{n}}", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=folder))
"""
RACE_SECONDS = 6
TARGETS = 300


@pytest.mark.parametrize("private_tmp", [True, False], ids=["private /tmp", "shared /tmp"])
def test_the_sweep_never_follows_a_folder_swapped_for_a_link(two_uids, private_tmp):
    """Root sweeps the victim's uid again and again while the swapper races: not one of root's
    files is deleted. With a private /tmp each kernel races in its own (the mounts of
    mnist_grader.launcher; a checkout in /tmp keeps /tmp shared even then, as in `make mutants`'
    scratch copies); shared, as without CAP_SYS_ADMIN, the sweep walks the race itself and must
    not delete through the link (a path-based sweep deleted hundreds)."""
    victim, swapper = two_uids
    targets = Path(tempfile.mkdtemp(prefix="mnist-race-targets-", dir=sandbox.work_root()))
    for n in range(TARGETS):
        (targets / f"f{n}").write_text("root's")
    race = f"/tmp/mnist-race-{os.getpid()}"
    code = SWAPPER.format(race=race, targets=str(targets), seconds=RACE_SECONDS)
    try:
        with started_as(swapper, code, private_tmp) as racing:
            assert racing.stdout.readline().strip() == "ready", racing.stderr.read()
            sweeps = 0
            while racing.poll() is None:
                made = run_as(
                    victim, VICTIM.format(race=race, count=TARGETS), private_tmp=private_tmp
                )
                assert made.returncode == 0, made.stderr
                sandbox.sweep(victim)
                sweeps += 1
            assert racing.returncode == 0, racing.stderr.read()
        deleted = [n for n in range(TARGETS) if not (targets / f"f{n}").exists()]
        assert deleted == [], f"root deleted {len(deleted)} of its files in {sweeps} sweeps"
        assert sandbox.leftovers(victim) == []
    finally:
        shutil.rmtree(targets, ignore_errors=True)
