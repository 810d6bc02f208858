"""The sandbox: grading runs at once never share a uid (they would kill each other's kernels),
and a kernel's private temporary folders never hide what it runs on."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_grader import launcher, sandbox

HOLD_ONE = """
from mnist_grader import engine, sandbox
import sys
with sandbox.lease_slots(1) as slots:
    print(slots[0], flush=True)
    sys.stdin.read()  # hold the lease until the test closes our stdin
"""


@pytest.mark.skipif(not sandbox.is_root(), reason="sandbox uids (and leases) need root")
def test_a_second_grading_run_gets_other_slots():
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_ONE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        taken = int(holder.stdout.readline())
        with sandbox.lease_slots(2) as mine:
            assert taken not in mine and len(set(mine)) == 2
    finally:
        holder.stdin.close()
        holder.wait(10)


def test_private_tmp_never_hides_the_venv(tmp_path):
    workdir = tmp_path / "sandbox"
    in_tmp = launcher.private_mount_targets(workdir, 61000, 16, [Path("/tmp/clone/.venv")])
    assert workdir in in_tmp and Path("/tmp") not in in_tmp and Path("/dev/shm") in in_tmp
    elsewhere = launcher.private_mount_targets(workdir, 61000, 16, [Path("/opt/venv")])
    assert {Path("/tmp"), Path("/var/tmp"), Path("/dev/shm")} <= set(elsewhere)


@pytest.mark.skipif(not sandbox.is_root(), reason="the sandbox user exists only under root")
def test_an_interpreter_the_sandbox_user_cannot_run_is_named(dist, data_file, bank_dir):
    """Grading from a venv whose interpreter sits in a folder of mode 0700 (as pyenv's under
    /root): every submission gets a results.json saying which path the sandbox user is refused,
    instead of kernels that die before they answer."""
    import json
    import sysconfig
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mnist-private-python-") as private:
        assert Path(private).stat().st_mode & 0o777 == 0o700
        venv = Path(private) / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        site = next(venv.glob("lib/python*/site-packages"))
        (site / "project.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        out = Path(private) / "out"
        finished = subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "mnist_grader",
                "grade",
                str(bank_dir / "passes_all.ipynb"),
                "--out",
                str(out),
                "--checks-dir",
                str(dist / "autograder"),
                "--data-file",
                str(data_file),
            ],
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert finished.returncode == 0, finished.stderr[-2000:]
        results = json.loads((out / "passes_all" / "results.json").read_text())
    assert results["extra_data"]["status"] == "grader error"
    assert results["score"] == 0
    assert f"cannot search {private} (mode 0700, owner uid 0)" in results["output"]
    assert "/usr/bin/python3" in results["output"]


# As the sandbox user: one shared memory segment it keeps, and one it hands to root (IPC_SET),
# which leaves it as the segment's creator only.
MAKE_SEGMENTS = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
kept = libc.shmget(0, 4096, 0o1600)
given = libc.shmget(0, 4096, 0o1600)
assert kept >= 0 and given >= 0, ctypes.get_errno()
state = ctypes.create_string_buffer(512)
assert libc.shmctl(given, 2, state) == 0  # IPC_STAT
ctypes.c_uint32.from_buffer(state, 4).value = 0  # ipc_perm.uid, after the key
assert libc.shmctl(given, 1, state) == 0, ctypes.get_errno()  # IPC_SET
"""


@pytest.mark.skipif(not sandbox.is_root(), reason="the sandbox user exists only under root")
def test_ipc_objects_are_removed_without_cap_ipc_owner():
    """With Docker's capabilities root may not remove another user's IPC objects: the sweep
    removes them as their creator, and none is left."""
    from tests import gradescope_like
    from tests.conftest import require

    require(shutil.which("capsh") is not None, "capsh (Debian's libcap2-bin) is missing")
    root = Path(__file__).resolve().parent.parent
    with sandbox.lease_slots(1) as (slot,):
        uid = sandbox.slot_uid(slot)
        subprocess.run(
            [sys.executable, "-c", MAKE_SEGMENTS],
            user=uid,
            group=sandbox.NOGROUP,
            extra_groups=[],
            check=True,
            cwd="/",
        )
        assert len(sandbox.ipc_objects(uid)) == 2
        drop = ",".join(gradescope_like.capabilities_to_drop())
        sweep = f"{sys.executable} -c 'from mnist_grader import sandbox; sandbox.sweep({uid})'"
        subprocess.run(["capsh", f"--drop={drop}", "--", "-c", sweep], check=True, cwd=root)
        assert sandbox.ipc_objects(uid) == []
