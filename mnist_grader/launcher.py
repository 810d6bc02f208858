"""The student's kernel's launcher: the code that runs in the kernel's own process, as root,
until it drops to the sandbox user.

`python -m mnist_grader.launcher --uid U --dir D [limits] -f CONNECTION_FILE` is the argv of the
kernelspec the grader writes for each submission (cold kernels; warm ones call `enter` in a fork
of the batch's template, mnist_grader.zygote). Started as root, it
- starts a new session (so the kernel and its children form one group),
- joins a CPU cgroup of its uid's own where the machine allows it (one CPU weight per kernel),
- gives the kernel private tmpfs mounts and System V IPC where the machine allows it,
- sets resource limits (address space, CPU seconds, processes, file size, no core files),
- copies the connection file into the sandbox folder for the unprivileged user,
- drops to that user (uid U, group nogroup) and cds into D,
- and execs ipykernel with a clean environment (and no input history: KERNEL_OPTIONS).
When not root (a developer's laptop), it only applies the limits: nothing else is possible.
The grader's side of the sandbox (slots, sweeps, protected folders) is mnist_grader.sandbox.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import sys
import time
from pathlib import Path

from . import fontcache

NOGROUP = 65534
# Folders every user may write in: a kernel gets private ones where it can, and what its uid left
# in them is removed after grading either way (mnist_grader.sandbox.sweep).
SHARED_TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock")

# Linux's values for unshare(2), mount(2) and umount2(2), which Python 3.10/3.11 do not wrap.
CLONE_NEWNS, CLONE_NEWIPC = 0x20000, 0x8000000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE, MNT_DETACH = 2, 4, 0x4000, 1 << 18, 2


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


# What a kernel keeps of its launcher's environment.
KERNEL_ENV_KEEP = (
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


# What every kernel imports before the student's first cell: the notebook's setup cell's imports
# and ipykernel's own. The batch's template (mnist_grader.zygote) imports the same for its forks.
KERNEL_IMPORTS = (
    "numpy",
    "keras",
    "tensorflow",
    "matplotlib.pyplot",
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
)
# How they are imported: with Python's cyclic garbage collector paused, then everything they made
# moved into its permanent generation (gc.freeze). TensorFlow's import makes so many objects that
# the collector's full passes over them are a large part of its CPU time, and every later full
# pass (the student's training, the checks' calls) would walk them again; what an import makes
# lives as long as the kernel anyway (make bench's cold table: kernel start, setup cell). A module
# that fails to import is left for the student's own import to report, in their cell.
# Source code, not a function: a cold kernel cannot import this package (the sandbox may hide
# its folder), so it runs this with `python -c` (KERNEL_MAIN).
PRELOAD = f"""
import gc as _gc, importlib as _importlib
_gc.disable()
try:
    for _name in {KERNEL_IMPORTS!r}:
        try:
            _importlib.import_module(_name)
        except Exception:
            pass
finally:
    _gc.freeze()
    _gc.enable()
del _gc, _importlib
"""
# A cold kernel's program: what `python -m ipykernel_launcher` runs (the student's folder off
# sys.path while it loads; ipykernel puts it back), after PRELOAD.
KERNEL_MAIN = f"""
import os as _os, sys as _sys
if _sys.path and _sys.path[0] in ("", _os.getcwd()):
    del _sys.path[0]
{PRELOAD}
from ipykernel import kernelapp as _kernelapp
_kernelapp.launch_new_instance()
"""

# ipykernel's options: no input history, which IPython would write, cell by cell (the grader's
# calls included), to a SQLite file in the sandbox that nothing here reads.
KERNEL_OPTIONS = ("--HistoryManager.enabled=False",)


def kernel_environment(workdir: Path, source=None) -> dict[str, str]:
    """A clean environment: nothing of the grader's leaks in; caches point into the sandbox.
    Kept from `source` (default: this process's environment)."""
    source = os.environ if source is None else source
    env = {name: source[name] for name in KERNEL_ENV_KEEP if name in source}
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


def private_mount_targets(workdir: Path, uid: int, size_mb: int, needed: list[Path]) -> dict:
    """Where the kernel's namespace mounts a fresh tmpfs, with its options: its own folder, and
    each shared temporary folder that holds none of `needed` (what the kernel runs on: a venv
    or checkout in /tmp, hidden under a fresh tmpfs, would keep the kernel from starting)."""
    targets = {workdir: f"size={size_mb}m,mode=0700,uid={uid},gid={NOGROUP}"}
    for folder in {Path(folder).resolve() for folder in SHARED_TMP_DIRS}:  # /var/lock -> /run/lock
        if folder.is_dir() and not any(path.resolve().is_relative_to(folder) for path in needed):
            targets[folder] = f"size={size_mb}m,mode=1777"
    return targets


def _private_mounts(workdir: Path, uid: int, size_mb: int) -> bool:
    """A mount namespace of the kernel's own: fresh, size-limited tmpfs on its folder and on the
    shared temporary folders (private_mount_targets), so what it writes is bounded and gone
    when it ends.

    By hand (ctypes) because Python 3.10/3.11 have no os.unshare or mount. Needs CAP_SYS_ADMIN:
    False where that is missing (a Docker container, say), and the kernel runs without it.
    """
    libc = _libc()
    # Its own System V IPC too: shared memory it makes dies with it instead of outliving it.
    libc.unshare(CLONE_NEWIPC)
    if libc.unshare(CLONE_NEWNS) != 0:
        return False
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return False
    needed = [Path(p) for p in (sys.prefix, sys.base_prefix, sys.executable, __file__)]
    for target, options in private_mount_targets(workdir, uid, size_mb, needed).items():
        if not _mount_tmpfs(libc, target, options):
            return target != workdir  # the shared folders are swept anyway; the folder is vital
    return True


# Each kernel's processes share one CPU weight, however many processes or sessions they start:
# without a group, the scheduler weighs every session alike (autogroup), so a kernel with four
# busy sessions took four shares against a classmate's one. A group per sandbox uid, inside the
# grader's own group (so a limit set on the grader, a container's say, still holds over it), and
# directly there: each kernel weighs what one session does, not a share of one for all kernels.
CPU_GROUP = "mnist-grader-kernel-"  # + the uid
CPU_WEIGHT = {1: ("cpu.shares", "1024"), 2: ("cpu.weight", "100")}  # each kernel the default


def _cpu_hierarchy() -> tuple[int, Path] | None:
    """(cgroup version, where it is mounted) of the hierarchy with the cpu controller."""
    try:
        mounts = [line.split() for line in Path("/proc/self/mounts").read_text().splitlines()]
    except OSError:
        return None
    for _, where, kind, options, *_ in mounts:
        if kind == "cgroup" and "cpu" in options.split(","):
            return 1, Path(where)
    for _, where, kind, *_ in mounts:
        if kind == "cgroup2" and "cpu" in _read(Path(where) / "cgroup.controllers").split():
            return 2, Path(where)
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _own_cpu_group() -> tuple[int, Path, Path] | None:
    """(cgroup version, where the hierarchy is mounted, this process's group in it)."""
    hierarchy = _cpu_hierarchy()
    if hierarchy is None:
        return None
    version, mount = hierarchy
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        number, controllers, path = line.split(":", 2)
        if (version == 1 and "cpu" in controllers.split(",")) or (version, number) == (2, "0"):
            return version, mount, mount / path.lstrip("/")
    return None


def cpu_quota() -> float | None:
    """How many CPUs' time this process's CPU groups allow in all (a container's `--cpus`: how
    Docker, and so Gradescope, limits CPU), the least over its group and the groups above it;
    None without a quota. By hand: os.sched_getaffinity, psutil and TensorFlow see every CPU of
    the host, not the quota, and TensorFlow starts a thread per CPU it sees."""
    found = _own_cpu_group()
    if found is None:
        return None
    version, mount, group = found
    quotas = []
    # A container's group may be mounted as the hierarchy's root (its own cgroup namespace):
    # its path from /proc/self/cgroup then names no folder here, and its parents are looked at.
    for folder in (group, *group.parents):
        if not folder.is_relative_to(mount):
            break
        if version == 2:
            fields = _read(folder / "cpu.max").split()  # "max 100000" or "50000 100000"
            quota, period = fields if len(fields) == 2 else ("max", "0")
        else:
            quota = _read(folder / "cpu.cfs_quota_us").strip()  # -1: none
            period = _read(folder / "cpu.cfs_period_us").strip()
        if quota.isdigit() and period.isdigit() and int(quota) > 0 and int(period) > 0:
            quotas.append(int(quota) / int(period))
    return min(quotas) if quotas else None


def kernel_cpu_group(uid: int) -> tuple[int, Path] | None:
    """(cgroup version, folder) of the CPU group of `uid`'s kernels, under this process's own
    group; None where the machine has no cpu controller."""
    found = _own_cpu_group()
    if found is None:
        return None
    version, _, group = found
    return version, group / f"{CPU_GROUP}{uid}"


def join_cpu_group(uid: int) -> Path | None:
    """Move this process (the kernel to be, still root) into the CPU group of `uid`'s kernels;
    everything it starts stays there, and after the drop to `uid` it cannot leave (the group's
    files are root's). The group, or None where the machine allows none (no cpu controller, or
    /sys/fs/cgroup read-only, as in a Docker container)."""
    found = kernel_cpu_group(uid)
    if found is None:
        return None
    version, group = found
    weight_file, weight = CPU_WEIGHT[version]
    try:
        if version == 2:  # let the groups below ours use the cpu controller
            (group.parent / "cgroup.subtree_control").write_text("+cpu")
        group.mkdir(exist_ok=True)
        (group / weight_file).write_text(weight)
        (group / "cgroup.procs").write_text(str(os.getpid()))
    except OSError:
        return None
    return group


def remove_cpu_group(uid: int) -> None:
    """The CPU group of `uid`'s kernels, once they are gone (the sweep); kept if not empty."""
    found = kernel_cpu_group(uid)
    for _ in range(20):  # a process just killed may take a moment to leave it
        try:
            if found is not None:
                found[1].rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _mount_tmpfs(libc, target: Path, options: str) -> bool:
    flags = MS_NOSUID | MS_NODEV
    return libc.mount(b"tmpfs", str(target).encode(), b"tmpfs", flags, options.encode()) == 0


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create `path` afresh (whatever stood there is removed first), never through a link."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _real_folder(path: Path) -> None:
    """A folder at `path`, made afresh when the last kernel left a link or a file there (a link
    to /etc, say: the font list written into it would fail, and the kernel with it)."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    path.mkdir(exist_ok=True)


def launcher_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uid", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--module", type=Path, required=True, help="mnist_exercise.py to copy in")
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--cpu-seconds", type=int, required=True)
    parser.add_argument("--max-processes", type=int, default=512)
    parser.add_argument("--max-file-mb", type=int, default=256)
    parser.add_argument("--tmp-mb", type=int, default=128, help="each private tmpfs")
    parser.add_argument(
        "--font-list", type=Path, help="matplotlib's font list to copy in (mnist_grader.fontcache)"
    )
    parser.add_argument("-f", dest="connection_file", type=Path, required=True)
    return parser.parse_args(argv)


def launch(argv: list[str] | None = None) -> None:
    """The cold path: this process becomes the sandboxed kernel by exec'ing a new Python."""
    workdir = enter(launcher_arguments(argv))
    python = sys.executable
    os.execve(
        python,
        [python, "-c", KERNEL_MAIN, "-f", str(workdir / "kernel.json"), *KERNEL_OPTIONS],
        kernel_environment(workdir),
    )


def enter(args: argparse.Namespace) -> Path:
    """Put this process in the sandbox: its own session, mounts, limits and uid, in its folder
    with the connection file and the support module. Returns the folder. Whoever calls it runs
    the kernel next (launch by exec, mnist_grader.zygote in a fork of its template)."""
    # The folder belongs to the student's uid, and after a restart holds what the last kernel
    # left there (links to root's files, say): root reads only its own files, and everything
    # in the folder is written after dropping to the student's uid.
    workdir = args.dir.resolve()
    connection = args.connection_file.read_bytes()
    module = args.module.read_bytes()
    font_list = fontcache.read_own(args.font_list) if args.font_list else None
    try:
        os.setsid()
    except PermissionError:  # jupyter_client already made us a session leader
        pass
    if is_root():
        join_cpu_group(args.uid)
        if not _private_mounts(workdir, args.uid, args.tmp_mb):
            os.chown(workdir, args.uid, NOGROUP, follow_symlinks=False)
            os.chmod(workdir, 0o700)  # other submissions' kernels (other uids) cannot look in
    set_limits(
        args.memory_mb * 2**20, args.cpu_seconds, args.max_processes, args.max_file_mb * 2**20
    )
    if is_root():
        os.setgroups([])
        os.setgid(NOGROUP)
        os.setuid(args.uid)
    os.chdir(workdir)
    os.umask(0o077)
    _write_new(workdir / "mnist_exercise.py", module, 0o444)
    _write_new(workdir / "kernel.json", connection, 0o600)
    _real_folder(workdir / "tmp")
    if font_list is not None:  # the kernel's MPLCONFIGDIR (kernel_environment)
        _write_new(workdir / "tmp" / font_list[0], font_list[1], 0o600)
    return workdir


if __name__ == "__main__":
    launch()
