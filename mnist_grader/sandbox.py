"""The student's kernel, in a sandbox of its own.

`python -m mnist_grader.sandbox --uid U --dir D [limits] -f CONNECTION_FILE` is the argv of the
kernelspec the grader writes for each submission. Started as root, it
- starts a new session (so the kernel and its children form one group),
- sets resource limits (address space, CPU seconds, processes, file size, no core files),
- copies the connection file into the sandbox folder for the unprivileged user,
- drops to that user (uid U, group nogroup) and cds into D,
- and execs ipykernel with a clean environment.
When not root (a developer's laptop), it only applies the limits: nothing else is possible.

`sweep(uid)` kills every process of a sandbox uid and removes its files from the shared temporary
folders, so that nothing a submission started or left can act on the next one. `lease_slots(n)`
hands a grading run slots (and so uids) that no other grading run on this machine holds, so
that two batches at once never sweep each other's kernels.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import resource
import shutil
import sys
from pathlib import Path

NOGROUP = 65534
SHARED_TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
LEASE_DIR = Path("/run/mnist-grader")  # root's: a sandboxed kernel cannot take or hold a lease
MAX_SLOTS = 64


def is_root() -> bool:
    return os.geteuid() == 0


def set_limits(memory_bytes: int, cpu_seconds: int, max_processes: int, max_file_bytes: int):
    limits = {
        resource.RLIMIT_AS: memory_bytes,
        resource.RLIMIT_CPU: cpu_seconds,
        resource.RLIMIT_FSIZE: max_file_bytes,
        resource.RLIMIT_CORE: 0,
    }
    if is_root():  # RLIMIT_NPROC counts per uid: only meaningful for a uid of its own
        limits[resource.RLIMIT_NPROC] = max_processes
    for kind, value in limits.items():
        _, hard = resource.getrlimit(kind)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(kind, (value, value))


def kernel_environment(workdir: Path) -> dict[str, str]:
    """A clean environment: nothing of the grader's leaks in; caches point into the sandbox."""
    keep = (
        "PATH",
        "LANG",
        "LC_ALL",
        "MNIST_NPZ",
        "FASHION_MNIST_DATA",
        "MNIST_EPOCHS",
        "MNIST_TRAIN_IMAGES",
        "TZ",
        "TF_NUM_INTRAOP_THREADS",
        "TF_NUM_INTEROP_THREADS",
        "OMP_NUM_THREADS",
    )
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update(
        HOME=str(workdir),
        TMPDIR=str(workdir / "tmp"),
        MPLBACKEND="agg",
        MPLCONFIGDIR=str(workdir / "tmp"),
        PYTHONDONTWRITEBYTECODE="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        KERAS_HOME=str(workdir / "tmp" / "keras"),
        PYTHONNOUSERSITE="1",
    )
    return env


def launch(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uid", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--cpu-seconds", type=int, required=True)
    parser.add_argument("--max-processes", type=int, default=512)
    parser.add_argument("--max-file-mb", type=int, default=256)
    parser.add_argument("-f", dest="connection_file", type=Path, required=True)
    args = parser.parse_args(argv)

    workdir = args.dir.resolve()
    (workdir / "tmp").mkdir(exist_ok=True)
    connection = workdir / "kernel.json"
    shutil.copyfile(args.connection_file, connection)
    try:
        os.setsid()
    except PermissionError:  # jupyter_client already made us a session leader
        pass
    if is_root():
        for path in (workdir, workdir / "tmp", connection):
            os.chown(path, args.uid, NOGROUP)
        connection.chmod(0o600)
        workdir.chmod(0o700)  # other submissions' kernels (other uids) cannot look in
    set_limits(
        args.memory_mb * 2**20, args.cpu_seconds, args.max_processes, args.max_file_mb * 2**20
    )
    if is_root():
        os.setgroups([])
        os.setgid(NOGROUP)
        os.setuid(args.uid)
    os.chdir(workdir)
    os.umask(0o077)
    python = sys.executable
    os.execve(
        python,
        [python, "-m", "ipykernel_launcher", "-f", str(connection)],
        kernel_environment(workdir),
    )


@contextlib.contextmanager
def lease_slots(count: int):
    """Yield `count` slot numbers that no other grading run on this machine holds until exit.

    A slot picks the sandbox uid, and finishing a submission kills everything of that uid: two
    runs sharing a uid would kill each other's kernels. A lease is an flock on a file of root's,
    so it ends with the process that held it, however that process ends.
    """
    if not is_root():  # no uid of its own without root, and no sweep either
        yield list(range(count))
        return
    LEASE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    held = []
    try:
        for slot in range(MAX_SLOTS):
            if len(held) == count:
                break
            handle = open(LEASE_DIR / f"slot-{slot}.lock", "w")  # noqa: SIM115 - held until exit
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            held.append((slot, handle))
        if len(held) < count:
            raise RuntimeError(f"all {MAX_SLOTS} grading slots on this machine are in use")
        yield [slot for slot, _ in held]
    finally:
        for _, handle in held:
            handle.close()


def protect(paths) -> None:
    """Make folders root's alone (mode 700), so that a sandboxed kernel cannot read them.

    Used on what a submission must never see: the checks (hidden ones included), the master and
    the solutions, the repository's history, the grades. The kernel only needs the venv.
    """
    if not is_root():
        return
    for path in paths:
        if path.is_dir():
            path.chmod(0o700)


def sweep(uid: int) -> int:
    """Kill every process running as `uid` and delete its files in the shared temp folders.

    Returns how many processes were killed. Only for a uid that belongs to the grader alone.
    """
    import psutil

    killed = 0
    for _ in range(5):  # a process may fork while we kill; go round until none is left
        victims = []
        for proc in psutil.process_iter(["uids"]):
            uids = proc.info["uids"]
            if uids and uid in (uids.real, uids.effective):
                victims.append(proc)
        if not victims:
            break
        for proc in victims:
            try:
                proc.kill()
                killed += 1
            except psutil.Error:
                pass
        psutil.wait_procs(victims, timeout=5)
    for folder in SHARED_TMP_DIRS:
        _remove_owned_by(Path(folder), uid)
    return killed


def _remove_owned_by(folder: Path, uid: int) -> None:
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        try:
            if entry.lstat().st_uid != uid:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink()
        except OSError:
            pass


if __name__ == "__main__":
    launch()
