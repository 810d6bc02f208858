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
import ctypes
import fcntl
import os
import resource
import shutil
import stat
import subprocess
import sys
from pathlib import Path

NOGROUP = 65534
# Folders every user may write in: a kernel gets private ones where it can, and what its uid left
# in them is removed after grading either way.
SHARED_TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock")
GRADER_DIR = Path("/run/mnist-grader")  # root's; out of /tmp, which a kernel gets a private one of
LEASE_DIR = GRADER_DIR / "leases"  # root's alone: a sandboxed kernel cannot take or hold a lease
MAX_SLOTS = 64
FIRST_SANDBOX_UID = 61000  # uids of their own, one per parallel job, that nothing else uses
SANDBOX_UIDS = range(FIRST_SANDBOX_UID, FIRST_SANDBOX_UID + MAX_SLOTS)


def slot_uid(slot: int) -> int:
    """The sandbox uid of a grading slot (each parallel job leases one: lease_slots)."""
    return FIRST_SANDBOX_UID + slot


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
    parser.add_argument("-f", dest="connection_file", type=Path, required=True)
    return parser.parse_args(argv)


def launch(argv: list[str] | None = None) -> None:
    """The cold path: this process becomes the sandboxed kernel by exec'ing a new Python."""
    workdir = enter(launcher_arguments(argv))
    python = sys.executable
    os.execve(
        python,
        [python, "-m", "ipykernel_launcher", "-f", str(workdir / "kernel.json")],
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
    try:
        os.setsid()
    except PermissionError:  # jupyter_client already made us a session leader
        pass
    if is_root():
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
    (workdir / "tmp").mkdir(exist_ok=True)
    return workdir


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
    LEASE_DIR.chmod(0o700)
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


@contextlib.contextmanager
def hidden(folder: Path | None):
    """While grading, the submissions folder is its owner's alone (its mode is put back after):
    a kernel that learns its path (from a command line in /proc) cannot read the others."""
    if folder is None or not is_root():
        yield
        return
    mode = folder.stat().st_mode & 0o7777
    folder.chmod(mode & ~0o077)
    try:
        yield
    finally:
        folder.chmod(mode)


@contextlib.contextmanager
def size_limited(folder: Path, size_mb: int):
    """A fresh tmpfs of `size_mb` on `folder` while grading one submission (where root may
    mount): what the kernel writes into its answers folder is bounded, and hard links out of it
    are impossible. Without the mount, only each file's size is bounded."""
    libc = _libc()
    mounted = is_root() and _mount_tmpfs(libc, folder, f"size={size_mb}m,mode=0711")
    try:
        yield
    finally:
        if mounted:
            libc.umount2(str(folder).encode(), MNT_DETACH)  # even if something is still open


def work_root() -> Path | None:
    """Where grading's own folders go (the kernel's folder, the data copy): outside /tmp, which
    the kernel sees a private tmpfs of, and traversable (not listable) by the sandbox uids.
    None when not root: the system's temporary folder then."""
    if not is_root():
        return None
    folder = GRADER_DIR / "work"
    folder.mkdir(parents=True, exist_ok=True)
    GRADER_DIR.chmod(0o711)
    folder.chmod(0o711)
    return folder


@contextlib.contextmanager
def protected(paths):
    """While grading, folders are root's alone (mode 700), so that a sandboxed kernel cannot
    read them; their modes are put back after, as the instructor had them.

    Used on what a submission must never see: the checks (hidden ones included), the master and
    the solutions, the repository's history, the grades. The kernel only needs the venv.
    """
    if not is_root():
        yield
        return
    modes = {path: path.stat().st_mode & 0o7777 for path in paths if path.is_dir()}
    for path in modes:
        path.chmod(0o700)
    try:
        yield
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def kernel_needs(data_folder: Path) -> list[tuple[Path, str]]:
    """(path, "r" or "x") that the sandboxed kernel must be able to use: the interpreter it is
    exec'd as (the venv's link and what it points to), the standard library and the venv's
    packages, and the data."""
    import sysconfig

    paths = sysconfig.get_paths()
    needs = [(Path(sys.executable), "x"), (Path(os.path.realpath(sys.executable)), "x")]
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        needs += [(Path(paths[name]), "r"), (Path(paths[name]), "x")]
    return [*needs, (data_folder, "r"), (data_folder, "x")]


# Asks Linux, as the sandbox user, about each (path, permission) in turn, and prints the
# first refused. By the shell's `test` run as that user because os.access answers for the
# calling process's uid only, and dropping this (threaded) process's privileges is not safe.
_FIRST_REFUSED = (
    'while [ $# -gt 0 ]; do test -"$2" "$1" || { echo "$2 $1"; exit 1; }; shift 2; done'
)
WHAT_IT_IS = {"x": "search", "r": "read"}


def unreachable(uid: int, needs: list[tuple[Path, str]]) -> str | None:
    """Why the sandbox user `uid` cannot use what the kernel needs, naming the first path it is
    refused (each folder on the way, then the path itself), or None when it can: checked before
    any kernel starts, because a kernel that cannot run its interpreter dies before saying why."""
    if not is_root():
        return None
    steps = []
    for path, permission in needs:
        steps += [(folder, "x") for folder in reversed(path.parents)] + [(path, permission)]
    argv = [str(part) for step in dict.fromkeys(steps) for part in step]
    checked = subprocess.run(
        ["/bin/sh", "-c", _FIRST_REFUSED, "sh", *argv],
        user=uid,
        group=NOGROUP,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if checked.returncode == 0:
        return None
    permission, _, refused = checked.stdout.strip().partition(" ")
    target = next(
        str(path) for path, _ in needs if path == Path(refused) or Path(refused) in path.parents
    )
    try:
        info = Path(refused).lstat()
        why = f"mode {stat.S_IMODE(info.st_mode):04o}, owner uid {info.st_uid}"
    except OSError as error:
        why = error.strerror or type(error).__name__
    verb = "run" if permission == "x" and not Path(refused).is_dir() else WHAT_IT_IS[permission]
    return (
        f"the sandbox user (uid {uid}) cannot {verb} {refused} ({why}), which the student's "
        f"kernel needs for {target}: install the grader from an interpreter every user can run "
        f"(setup.sh uses /usr/bin/python3)"
    )


def cannot_start_interpreter(uid: int) -> str | None:
    """Why the venv's interpreter does not start as `uid` (its shared library unreadable, say,
    which no path of kernel_needs shows), or None."""
    if not is_root():
        return None
    try:
        started = subprocess.run(
            [sys.executable, "-c", "pass"],
            user=uid,
            group=NOGROUP,
            extra_groups=[],
            cwd="/",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"the sandbox user (uid {uid}) cannot run {sys.executable}: {error}"
    if started.returncode == 0:
        return None
    last = (started.stderr.strip().splitlines() or [f"exit code {started.returncode}"])[-1]
    return f"the sandbox user (uid {uid}) cannot run {sys.executable}: {last[:300]}"


def sweep(uid: int) -> int:
    """Kill every process running as `uid` and delete its files in the shared temp folders and
    its System V IPC objects; what could not be removed is reported on stderr (never ignored).

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
    _remove_ipc_owned_by(uid)
    left = leftovers(uid)
    if left:
        print(f"mnist_grader: could not remove what uid {uid} left: {left}", file=sys.stderr)
    return killed


def leftovers(uid: int) -> list[str]:
    """What `uid` still has on this machine: processes, files in the shared temporary folders
    (at any depth it could write to), System V IPC objects it owns or created."""
    import psutil

    found = [
        f"process {proc.pid}"
        for proc in psutil.process_iter(["uids"])
        if proc.info["uids"] and uid in (proc.info["uids"].real, proc.info["uids"].effective)
    ]
    for folder in SHARED_TMP_DIRS:
        found += [str(path) for path in _walk_writable(Path(folder), uid) if _owned(path, uid)]
    found += [f"System V {kind} {ident}" for kind, _, ident, _ in ipc_objects(uid)]
    return found


def _owned(path: Path, uid: int) -> bool:
    try:
        return path.lstat().st_uid == uid
    except OSError:
        return False


def _walk_writable(folder: Path, uid: int):
    """Every entry of `folder`, and of the subfolders `uid` could create entries in (other
    users' world-writable folders inside /tmp, say), without following links."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        yield entry
        try:
            info = entry.lstat()
        except OSError:
            continue
        writable = info.st_mode & 0o002 or (info.st_gid == NOGROUP and info.st_mode & 0o020)
        if stat.S_ISDIR(info.st_mode) and info.st_uid != uid and writable:
            yield from _walk_writable(entry, uid)


IPC_KINDS = (("shm", "-m", "shmid"), ("msg", "-q", "msqid"), ("sem", "-s", "semid"))


def ipc_objects(uid: int) -> list[tuple[str, str, str, int]]:
    """(kind, ipcrm flag, id, creator uid) of the IPC objects `uid` owns or created: an owner
    can hand its object to another uid (IPC_SET), but not its creator uid."""
    found = []
    for kind, flag, key in IPC_KINDS:
        try:
            rows = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()
        except OSError:
            continue
        header = rows[0].split()
        for row in rows[1:]:
            fields = dict(zip(header, row.split(), strict=False))
            if str(uid) in (fields.get("uid"), fields.get("cuid")):
                found.append((kind, flag, fields[key], int(fields["cuid"])))
    return found


def _remove_ipc_owned_by(uid: int) -> None:
    """System V shared memory, queues and semaphores of `uid` (kernels that had no IPC namespace
    of their own could leave them for the next submission). Removed by `ipcrm` (Python has no
    shmctl) run as their creator: root may remove another user's object only with
    CAP_IPC_OWNER, which Docker's default capabilities (Gradescope's) leave out."""
    ipcrm = shutil.which("ipcrm")
    if ipcrm is None:
        return
    for _, flag, ident, creator in ipc_objects(uid):
        user = {} if creator == os.geteuid() else {"user": creator, "group": NOGROUP}
        subprocess.run(
            [ipcrm, flag, ident], capture_output=True, check=False, extra_groups=[], **user
        )


def _remove_owned_by(folder: Path, uid: int) -> None:
    for entry in list(_walk_writable(folder, uid)):
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
