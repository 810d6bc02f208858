"""The grader's side of the sandbox (the kernel's own side is mnist_grader.launcher).

`sweep(uid)` kills every process of a sandbox uid and removes its files from the shared temporary
folders, so that nothing a submission started or left can act on the next one. `lease_slots(n)`
hands a grading run slots (and so uids) that no other grading run on this machine holds, so
that two batches at once never sweep each other's kernels.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .launcher import (  # noqa: F401 - NOGROUP and is_root are the sandbox's interface too
    MNT_DETACH,
    NOGROUP,
    SHARED_TMP_DIRS,
    _libc,
    _mount_tmpfs,
    is_root,
    remove_cpu_group,
)

GRADER_DIR = Path("/run/mnist-grader")  # root's; out of /tmp, which a kernel gets a private one of
LEASE_DIR = GRADER_DIR / "leases"  # root's alone: a sandboxed kernel cannot take or hold a lease
MAX_SLOTS = 64
FIRST_SANDBOX_UID = 61000  # uids of their own, one per parallel job, that nothing else uses
SANDBOX_UIDS = range(FIRST_SANDBOX_UID, FIRST_SANDBOX_UID + MAX_SLOTS)


def slot_uid(slot: int) -> int:
    """The sandbox uid of a grading slot (each parallel job leases one: lease_slots)."""
    return FIRST_SANDBOX_UID + slot


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
    remove_cpu_group(uid)
    for folder in SHARED_TMP_DIRS:
        _remove_owned_by(folder, uid)
    _remove_ipc_owned_by(uid)
    left = leftovers(uid)
    if left:
        shown = ", ".join(path[:300] for path in left[:20])
        more = f" and {len(left) - 20} more" if len(left) > 20 else ""
        print(f"mnist_grader: could not remove what uid {uid} left: {shown}{more}", file=sys.stderr)
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
        found += _walk_shared_folder(folder, uid, remove=False)[0]
    found += [f"System V {kind} {ident}" for kind, _, ident, _ in ipc_objects(uid)]
    return found


# Root walks the shared folders, which every kernel can change while it walks (a folder swapped
# for a link to root's files, renameat2's RENAME_EXCHANGE), so it never resolves a path there:
# each folder is opened relative to its parent's descriptor without following links, each entry
# is judged by what that descriptor's folder holds, and removed through it (unlinkat, with
# dir_fd). By hand rather than os.fwalk or shutil.rmtree, whose recursion (Python 3.10-3.12)
# or open descriptor per level cannot take a folder millions of levels deep: one descriptor is
# open at a time, and going back up reopens ".." and checks it is the folder it came from.
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
WALK_ATTEMPTS = 3  # a walk stops where another kernel moved the folder it was in; walk again


@dataclass
class _Level:
    """A folder of the walk: its identity (device, inode), its name in the folder above, the
    entries not looked at yet, and whether everything in it goes (it, or a folder above, is the
    uid's)."""

    identity: tuple[int, int]
    name: str
    pending: list[str]
    clearing: bool


def _open_folder(name: str, dir_fd: int | None = None) -> int | None:
    try:
        return os.open(name, _FOLDER_FLAGS, dir_fd=dir_fd)
    except OSError:  # gone, or now a link or a file: not a folder to walk
        return None


def _entries(fd: int) -> list[str]:
    try:
        with os.scandir(fd) as listing:
            return [entry.name for entry in listing]
    except OSError:
        return []


def _writable_by(info: os.stat_result, uid: int) -> bool:
    """A folder of another owner that `uid` could create entries in."""
    return bool(info.st_mode & 0o002 or (info.st_gid == NOGROUP and info.st_mode & 0o020))


def _walk_shared_folder(top: str, uid: int, remove: bool) -> tuple[list[str], bool]:
    """The entries of `uid` in `top` and in every folder under it `uid` could write in (without
    crossing into another file system): removed (with everything in them) when `remove`, else
    listed. Returns (what is still there, as paths for a person; whether the walk finished)."""
    fd = _open_folder(os.path.realpath(top))  # /var/lock -> /run/lock: root's own link
    if fd is None:
        return [], True
    top_info = os.fstat(fd)
    stack = [_Level((top_info.st_dev, top_info.st_ino), os.path.realpath(top), _entries(fd), False)]
    found: list[str] = []

    def where(name: str) -> str:
        return "/".join([*(level.name for level in stack), name])

    try:
        while stack:
            level = stack[-1]
            if not level.pending:  # this folder is done: back up to the one above
                stack.pop()
                if not stack:
                    return found, True
                parent = _open_folder("..", fd)
                os.close(fd)
                fd = parent
                if fd is None or _identity(os.fstat(fd)) != stack[-1].identity:
                    return found, False  # moved while we were in it
                if remove and level.clearing and _is(level.name, fd, level.identity):
                    _quietly(os.rmdir, level.name, fd, found, where)
                continue
            name = level.pending.pop()
            try:
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue
            theirs = level.clearing or info.st_uid == uid
            if stat.S_ISDIR(info.st_mode):
                if info.st_dev != top_info.st_dev:  # a mount point: root's, not walked into
                    continue
                if theirs and not remove:
                    found.append(where(name))  # listed as one: what is inside goes with it
                    continue
                if not theirs and not _writable_by(info, uid):
                    continue
                child = _open_folder(name, fd)
                if child is None:
                    continue
                opened = os.fstat(child)  # judged by what was opened, not by the name's stat
                clearing = level.clearing or opened.st_uid == uid
                if opened.st_dev != top_info.st_dev or not (clearing or _writable_by(opened, uid)):
                    os.close(child)
                    continue
                os.close(fd)
                fd = child
                stack.append(_Level(_identity(opened), name, _entries(fd), clearing and remove))
            elif theirs:
                if remove:
                    _quietly(os.unlink, name, fd, found, where)
                else:
                    found.append(where(name))
        return found, True
    finally:
        if fd is not None:
            os.close(fd)


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _is(name: str, dir_fd: int, identity: tuple[int, int]) -> bool:
    """Whether `name` in the folder `dir_fd` is still the entry of that identity."""
    try:
        return _identity(os.stat(name, dir_fd=dir_fd, follow_symlinks=False)) == identity
    except OSError:
        return False


def _quietly(remove, name: str, dir_fd: int, found: list[str], where) -> None:
    """Remove `name` in the folder `dir_fd`; what could not be removed is listed."""
    try:
        remove(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except OSError:
        found.append(where(name))


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


def _remove_owned_by(folder: str, uid: int) -> None:
    for _ in range(WALK_ATTEMPTS):
        if _walk_shared_folder(folder, uid, remove=True)[1]:
            return
