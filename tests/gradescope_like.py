"""Gradescope's machine, rebuilt here as closely as root can: what `make gradescope-check`
(tests/test_gradescope_like.py) and `make bench` run the zip's run_autograder in.

Gradescope runs each submission in a Docker container of Ubuntu 22.04 (Python 3.10), with
Docker's default capabilities (no CAP_SYS_ADMIN, so no mount or IPC namespaces, and no
CAP_IPC_OWNER), 0.5 CPU and 768 MB by default. Here:
- Python 3.10: pyenv's CPython 3.10, copied out of /root (mode 700, which the sandbox user cannot
  enter) to /opt/python3.10, its interpreter's library path made relative (patchelf);
- the capabilities: `capsh --drop=` every capability Docker does not grant, checked by
  `capsh --print` inside;
- one CPU: `taskset -c 0`; a share of it (0.5 CPU): a child cpu cgroup with a CFS quota;
- memory: a child memory cgroup of this process's own, with Docker's limit, where the machine
  lets us make one (cgroup v1 or v2);
- the container's disk: a small ext4 image, loop-mounted, bound over /tmp, /var/tmp, /run/lock,
  the grader's work folder and the results folder in a mount namespace of the run's own, and a
  64 MB tmpfs on /dev/shm (Docker's default), so that a submission can really fill it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import resource
import shlex
import shutil
import subprocess
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

PYENV_PYTHON_310 = Path("/root/.pyenv/versions/3.10.13")
PYTHON_310_HOME = Path("/opt/python3.10")
PYTHON_310 = PYTHON_310_HOME / "bin" / "python3.10"
# What Docker grants a container by default (moby's oci/caps/defaults.go).
DOCKER_CAPABILITIES = frozenset(
    "cap_" + name
    for name in (
        "chown dac_override fsetid fowner mknod net_raw setgid setuid setfcap setpcap "
        "net_bind_service sys_chroot kill audit_write"
    ).split()
)
CHECK_ROOT = Path("/var/cache/mnist-gradescope-check")  # outside /tmp, which a run hides
GRADER_WORK = Path("/run/mnist-grader/work")  # sandbox.work_root(): on the container's disk
SHM_MB = 64  # Docker's /dev/shm
CPU_PERIOD_US = 100_000


def missing_tools() -> list[str]:
    """What this machine lacks to rebuild Gradescope's (Debian: libcap2-bin, patchelf,
    util-linux, e2fsprogs; CPython 3.10 from pyenv)."""
    missing = [
        tool
        for tool in ("capsh", "taskset", "patchelf", "unshare", "mkfs.ext4", "ipcrm")
        if shutil.which(tool) is None
    ]
    if not PYTHON_310.exists() and not (PYENV_PYTHON_310 / "bin" / "python3.10").exists():
        missing.append(f"CPython 3.10 (in {PYENV_PYTHON_310} or {PYTHON_310_HOME})")
    if os.geteuid() != 0:
        missing.append("root")
    return missing


def python_310() -> Path:
    """A CPython 3.10 every user can run: pyenv's, copied out of /root once."""
    if not PYTHON_310.exists():
        partial = PYTHON_310_HOME.with_name(PYTHON_310_HOME.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(PYENV_PYTHON_310, partial, symlinks=True)
        # Its RUNPATH names the lib folder under /root: make it relative to the binary.
        subprocess.run(
            ["patchelf", "--set-rpath", "$ORIGIN/../lib", str(partial / "bin" / "python3.10")],
            check=True,
        )
        partial.chmod(0o755)
        partial.rename(PYTHON_310_HOME)
    return PYTHON_310


def capabilities_to_drop() -> list[str]:
    shown = subprocess.run(["capsh", "--print"], capture_output=True, text=True, check=True)
    bounding = re.search(r"^Bounding set =(.*)$", shown.stdout, re.MULTILINE).group(1)
    return [cap for cap in bounding.split(",") if cap and cap not in DOCKER_CAPABILITIES]


def unpack(zip_path: Path, root: Path) -> Path:
    """The zip as Gradescope lays it out: source/, run_autograder beside it, submission/,
    results/."""
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(root / "source")
    for name in ("setup.sh", "run_autograder"):
        (root / "source" / name).chmod(0o755)
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    (root / "submission").mkdir(exist_ok=True)
    (root / "results").mkdir(exist_ok=True)
    root.chmod(0o755)
    return root


def run_setup(root: Path) -> float:
    """The zip's setup.sh, on Python 3.10, as Gradescope runs it when it builds the image;
    returns its wall time."""
    env = {
        **os.environ,
        "AUTOGRADER_ROOT": str(root),
        "AUTOGRADER_BASE_PYTHON": str(python_310()),
    }
    started = time.monotonic()
    subprocess.run(
        ["bash", str(root / "source" / "setup.sh")],
        env=env,
        check=True,
        timeout=1800,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - started


@contextlib.contextmanager
def installed(zip_path: Path):
    """A Gradescope tree of `zip_path` whose setup.sh has run, held for this process alone.

    The tree lives on between runs, one per set of pins, setup.sh and interpreter: setup.sh
    runs every time, as on Gradescope, but pip then finds the packages installed (a fresh
    install and deleting it take minutes on this disk). A tree for other pins is removed.
    """
    with zipfile.ZipFile(zip_path) as archive:
        recipe = archive.read("requirements.txt") + archive.read("setup.sh")
    recipe += subprocess.run([str(python_310()), "-V"], capture_output=True).stdout
    root = CHECK_ROOT / f"autograder-{hashlib.sha256(recipe).hexdigest()[:16]}"
    CHECK_ROOT.mkdir(parents=True, exist_ok=True)
    CHECK_ROOT.chmod(0o755)
    with (CHECK_ROOT / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for old in CHECK_ROOT.glob("autograder-*"):
            if old != root:
                shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(root / "source", ignore_errors=True)
        unpack(zip_path, root)
        run_setup(root)
        yield root


def folder_mb(folder: Path) -> float:
    total = 0
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            if not path.is_symlink():
                total += path.lstat().st_blocks * 512
    return total / 2**20


# -- cgroups ------------------------------------------------------------------------------------


@dataclass
class Cgroup:
    """A child cgroup of this process's own: memory (and maybe CPU) limits for one run."""

    memory: Path | None = None
    cpu: Path | None = None
    version: int = 0
    folders: list = field(default_factory=list)

    def procs_files(self) -> list[Path]:
        return [folder / "cgroup.procs" for folder in self.folders]

    def joined(self, argv: list[str]) -> list[str]:
        """`argv` run by a shell that first moves itself into this group (what it execs stays)."""
        enter = "".join(f"echo $$ > {shlex.quote(str(f))} && " for f in self.procs_files())
        return ["sh", "-c", f'{enter}exec "$@"', "sh", *argv]

    def peak_mb(self) -> float | None:
        if self.memory is None:
            return None
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        try:
            return int((self.memory / name).read_text()) / 2**20
        except OSError:
            return None

    def remove(self) -> None:
        for folder in self.folders:
            for _ in range(50):  # the last processes may take a moment to leave
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)


def _own_cgroups() -> dict[str, Path]:
    """controller ('memory', 'cpu', or 'unified') -> this process's cgroup folder."""
    found = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if number == "0" and not controllers:
            unified = Path("/sys/fs/cgroup")
            if not (unified / "cgroup.controllers").exists():
                unified = unified / "unified"
            found["unified"] = unified / relative
        for controller in controllers.split(","):
            if controller in ("memory", "cpu"):
                found[controller] = Path("/sys/fs/cgroup") / controller / relative
    return found


def make_cgroup(name: str, memory_mb: int | None, cpus: float | None = None) -> Cgroup:
    """A child cgroup with `memory_mb` and `cpus` limits, as far as this machine allows (an
    unset part stays None: the caller says what it could not limit)."""
    own = _own_cgroups()
    group = Cgroup()
    if "memory" in own:  # cgroup v1
        group.version = 1
        for controller, limit_file, value in (
            ("memory", "memory.limit_in_bytes", memory_mb and memory_mb * 2**20),
            ("cpu", "cpu.cfs_quota_us", cpus and int(cpus * CPU_PERIOD_US)),
        ):
            if value is None or controller not in own:
                continue
            folder = own[controller] / name
            try:
                folder.mkdir()
                group.folders.append(folder)
                if controller == "cpu":
                    (folder / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
                (folder / limit_file).write_text(str(value))
                setattr(group, controller, folder)
            except OSError:
                pass
    elif "unified" in own:  # cgroup v2: needs the controllers delegated to our own group
        group.version = 2
        folder = own["unified"] / name
        try:
            folder.mkdir()
            group.folders.append(folder)
            if memory_mb:
                (folder / "memory.max").write_text(str(memory_mb * 2**20))
                group.memory = folder
            if cpus:
                (folder / "cpu.max").write_text(f"{int(cpus * CPU_PERIOD_US)} {CPU_PERIOD_US}")
                group.cpu = folder
        except OSError:
            pass
    return group


# -- one run ------------------------------------------------------------------------------------


SAMPLE_SECONDS = 0.1


def _anon_kb(pid: int) -> int:
    """RssAnon of a process (psutil reports RSS, which counts mapped library pages too)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def sample_tree(child: subprocess.Popen, deadline: float) -> tuple[float, float]:
    """Wait for `child`, sampling its process tree: (peak summed RSS, peak summed RssAnon), MB.
    Kills it (and raises) past `deadline`."""
    import psutil

    top, peak_rss, peak_anon = psutil.Process(child.pid), 0, 0
    while child.poll() is None:
        if time.monotonic() > deadline:
            child.kill()
            child.wait()
            raise TimeoutError("run_autograder ran past its deadline")
        rss = anon = 0
        with contextlib.suppress(psutil.Error):
            for proc in [top, *top.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    rss += proc.memory_info().rss
                    anon += _anon_kb(proc.pid) * 1024
        peak_rss, peak_anon = max(peak_rss, rss), max(peak_anon, anon)
        time.sleep(SAMPLE_SECONDS)
    return peak_rss / 2**20, peak_anon / 2**20


@dataclass
class Run:
    results_text: str
    environment: str  # capsh --print, affinity and cgroups, as seen inside
    left_in_tmp: list[str]  # "uid path" of every file a sandbox uid still has in the tmp folders
    wall_seconds: float
    cpu_seconds: float
    memory_peak_mb: float | None  # the memory cgroup's peak (anonymous memory and page cache)
    returncode: int
    peak_rss_mb: float = 0.0  # summed RSS of the process tree (counts shared library pages)
    peak_anon_mb: float = 0.0  # summed RssAnon: what the processes allocated themselves
    output: str = ""  # run_autograder's output and errors: the instructor's log, its phase lines


class Disk:
    """The container's writable disk: a small ext4 image, mounted at `mountpoint` while open."""

    def __init__(self, folder: Path, size_mb: int):
        self.image, self.mountpoint = folder / "disk.img", folder / "disk"
        self.size_mb = size_mb

    def __enter__(self) -> Disk:
        with self.image.open("wb") as handle:
            handle.truncate(self.size_mb * 2**20)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(self.image)], check=True)
        self.mountpoint.mkdir(exist_ok=True)
        subprocess.run(["mount", "-o", "loop", str(self.image), str(self.mountpoint)], check=True)
        for name, mode in (("tmp", 0o1777), ("var-tmp", 0o1777), ("lock", 0o1777)):
            (self.mountpoint / name).mkdir(exist_ok=True)
            (self.mountpoint / name).chmod(mode)
        for name in ("work", "results"):
            (self.mountpoint / name).mkdir(exist_ok=True)
            (self.mountpoint / name).chmod(0o755)
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run(["umount", "-l", str(self.mountpoint)], check=False)
        self.image.unlink(missing_ok=True)

    def used_mb(self) -> float:
        stats = os.statvfs(self.mountpoint)
        return (stats.f_blocks - stats.f_bfree) * stats.f_frsize / 2**20

    def files_of(self, uids: range) -> list[str]:
        found = []
        for path in self.mountpoint.rglob("*"):
            with contextlib.suppress(OSError):
                if path.lstat().st_uid in uids:
                    found.append(str(path))
        return found


INNER = """
set -eu
{cgroup_join}
mount --bind {disk}/tmp /tmp
mount --bind {disk}/var-tmp /var/tmp
mount --bind {disk}/lock /run/lock
mkdir -p {work}
mount --bind {disk}/work {work}
mount --bind {disk}/results {root}/results
mount -t tmpfs -o size={shm}m,mode=1777,nosuid,nodev tmpfs /dev/shm
set +e
taskset -c {cpu} capsh --drop={drop} -- -c '
    capsh --print > {root}/environment.txt
    taskset -p $$ >> {root}/environment.txt
    cat /proc/self/cgroup >> {root}/environment.txt
    exec {root}/run_autograder {arguments}'
status=$?
find /tmp /var/tmp /dev/shm /run/lock -xdev -printf '%U %p\\n' > {root}/left.txt 2>/dev/null
exit $status
"""


def run_autograder(
    root: Path,
    disk: Disk,
    arguments: list[str],
    cgroup: Cgroup | None = None,
    python: Path | None = None,
    cpu: int = 0,
    sandbox_uids: range = range(61000, 61064),
) -> Run:
    """The zip's run_autograder on root/submission, in Gradescope's conditions (see the module's
    docstring); what it wrote and what it left."""
    (disk.mountpoint / "results").chmod(0o755)
    for stale in ("environment.txt", "left.txt", "stdout.txt"):
        (root / stale).unlink(missing_ok=True)
    for stale in (disk.mountpoint / "results").iterdir():
        stale.unlink()
    joins = cgroup.procs_files() if cgroup else []
    script = INNER.format(
        cgroup_join="\n".join(f"echo $$ > {shlex.quote(str(f))}" for f in joins),
        disk=shlex.quote(str(disk.mountpoint)),
        work=GRADER_WORK,
        root=shlex.quote(str(root)),
        shm=SHM_MB,
        cpu=cpu,
        drop=",".join(capabilities_to_drop()),
        arguments=" ".join(shlex.quote(a) for a in arguments),
    )
    GRADER_WORK.parent.mkdir(parents=True, exist_ok=True)
    GRADER_WORK.parent.chmod(0o711)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MNIST_", "FASHION_"))}
    env["AUTOGRADER_ROOT"] = str(root)
    if python:
        env["AUTOGRADER_PYTHON"] = str(python)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with (root / "stderr.txt").open("w") as errors, (root / "stdout.txt").open("w") as output:
        child = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            env=env,
            stdout=output,
            stderr=errors,
        )
        peak_rss, peak_anon = sample_tree(child, deadline=started + 900)
    stderr = (root / "stderr.txt").read_text()
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    left = []
    with contextlib.suppress(OSError):
        for line in (root / "left.txt").read_text().splitlines():
            uid, _, path = line.partition(" ")
            if uid.isdigit() and int(uid) in sandbox_uids:
                left.append(line)
    results = disk.mountpoint / "results" / "results.json"
    return Run(
        results_text=results.read_text() if results.exists() else "",
        environment=(root / "environment.txt").read_text()
        if (root / "environment.txt").exists()
        else stderr[-3000:],
        left_in_tmp=left,
        wall_seconds=wall,
        cpu_seconds=cpu_seconds,
        memory_peak_mb=cgroup.peak_mb() if cgroup else None,
        returncode=child.returncode,
        peak_rss_mb=peak_rss,
        peak_anon_mb=peak_anon,
        output=(root / "stdout.txt").read_text(errors="replace") + stderr,
    )


@contextlib.contextmanager
def check_folder():
    """A temporary folder outside /tmp (which runs hide), traversable by the sandbox user."""
    CHECK_ROOT.mkdir(parents=True, exist_ok=True)
    CHECK_ROOT.chmod(0o755)
    folder = Path(tempfile.mkdtemp(dir=CHECK_ROOT))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
