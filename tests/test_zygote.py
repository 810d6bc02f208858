"""Warm kernels (mnist_grader.zygote): each kernel is a fresh fork of the batch's template that
enters the same sandbox as a cold kernel, holds nothing of the grader's, and is interrupted and
killed through its stub as jupyter_client expects."""

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

from mnist_grader import launcher, remote, sandbox, session, zygote

pytestmark = pytest.mark.skipif(not sandbox.is_root(), reason="sandbox uids need root")

FACTS = """
import gc, json, os, resource, socket, sys, numpy, tempfile
def template_reachable(path):
    try:
        socket.socket(socket.AF_UNIX).connect(path)
        return True
    except OSError:
        return False
facts = json.dumps({
    "uid": os.getuid(),
    "cwd": os.getcwd(),
    "grader_modules": sorted(m for m in sys.modules if m.split(".")[0] == "mnist_grader"),
    "environment": sorted(os.environ),
    "tmp": tempfile.gettempdir(),
    "draw": float(numpy.random.random()),
    "pid": os.getpid(),
    "template_reachable": template_reachable(TEMPLATE),
    "limits": [resource.getrlimit(getattr(resource, name))[0]
               for name in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_FSIZE")],
    "namespaces": [os.readlink(f"/proc/self/ns/{kind}") for kind in ("mnt", "ipc")],
    "imported": [name for name in KERNEL_IMPORTS if name in sys.modules],
    "frozen": gc.get_freeze_count(),
})
"""


@pytest.fixture
def work(tmp_path):
    """Kernels' folders live where grading puts them: the kernel's /tmp is a private one."""
    with tempfile.TemporaryDirectory(dir=sandbox.work_root()) as folder:
        Path(folder).chmod(0o711)
        yield Path(folder)


@pytest.fixture(scope="module")
def template_socket(tmp_path_factory):
    folder = tmp_path_factory.mktemp("template")
    folder.chmod(0o700)
    with zygote.template(folder, dict(os.environ)) as path:
        yield path


def _kernel_facts(tmp_path: Path, settings, slot: int) -> dict:
    root = tmp_path / f"k{slot}"
    root.mkdir()
    root.chmod(0o711)
    workdir = root / "sandbox"
    workdir.mkdir()
    uid = sandbox.slot_uid(40 + slot)  # far from the slots a parallel test run leases
    deadline = time.monotonic() + 120
    module = settings.checks_dir / "mnist_exercise.py"
    with session.KernelSession(workdir, module, uid, settings, deadline, {}) as kernel:
        source = FACTS.replace("TEMPLATE", repr(settings.kernel_template))
        source = source.replace("KERNEL_IMPORTS", repr(launcher.KERNEL_IMPORTS))
        assert kernel.run(source, 60) == ("ok", "")
        calls = remote.RemoteCalls(kernel)
        calls.load_probe()
        facts = json.loads(calls.fetch("facts"))
        # the process whose CPU grader.log's phases count as the kernel's (not the stub)
        return {**facts, "expected_uid": uid, "workdir": workdir, "counted": kernel.kernel_pid()}


def test_each_kernel_is_a_fresh_fork_in_the_sandbox(settings, template_socket, work):
    warm = replace(settings, kernel_template=str(template_socket))
    first, second = (_kernel_facts(work, warm, slot) for slot in (0, 1))
    for facts in (first, second):
        assert facts["uid"] == facts["expected_uid"]
        assert facts["cwd"] == str(facts["workdir"].resolve())
        assert facts["grader_modules"] == []
        assert "PYTHONPATH" not in facts["environment"] and "HOME" in facts["environment"]
        assert facts["tmp"] == str(facts["workdir"].resolve() / "tmp")
        assert not facts["template_reachable"]  # no kernel can ask for a kernel of another uid
        # the same limits and namespaces as a cold kernel (launcher.enter)
        assert facts["limits"] == [
            settings.memory_mb * 2**20,
            settings.cpu_seconds,
            512,
            256 * 2**20,
        ]
        grader = [os.readlink(f"/proc/self/ns/{kind}") for kind in ("mnt", "ipc")]
        assert all(own != ours for own, ours in zip(facts["namespaces"], grader, strict=True))
    assert first["pid"] != second["pid"]
    assert (first["counted"], second["counted"]) == (first["pid"], second["pid"])
    assert first["draw"] != second["draw"]  # each fork its own random state, as a new Python
    for facts in (first, second):  # the template's imports, as a cold kernel's (launcher.PRELOAD)
        assert facts["imported"] == list(launcher.KERNEL_IMPORTS) and facts["frozen"] > 0


def test_a_warm_kernel_is_interrupted_and_answers_again(settings, template_socket, work):
    warm = replace(settings, kernel_template=str(template_socket), cell_seconds=3)
    root = work / "k"
    root.mkdir()
    root.chmod(0o711)
    (root / "sandbox").mkdir()
    uid = sandbox.slot_uid(45)
    module = settings.checks_dir / "mnist_exercise.py"
    deadline = time.monotonic() + 120
    with session.KernelSession(root / "sandbox", module, uid, warm, deadline, {}) as kernel:
        assert kernel.run("while True: pass", 3)[0] == "timeout"
        assert not kernel.log.kernel_lost
        assert kernel.run("x = 1", 10) == ("ok", "")
        assert kernel.run("import os; pid = os.getpid()", 10) == ("ok", "")
        calls = remote.RemoteCalls(kernel)
        calls.load_probe()
        pid = calls.fetch("pid")
        kernel.km.provisioner.process.kill()  # the manager's SIGKILL reaches only the stub
        for _ in range(50):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)
        assert not Path(f"/proc/{pid}").exists(), "the template kills a kernel whose stub died"


def test_without_its_template_a_kernel_starts_cold(settings, work):
    gone = replace(settings, kernel_template=str(work / "no-template.sock"))
    facts = _kernel_facts(work, gone, 2)
    assert facts["uid"] == facts["expected_uid"] and facts["grader_modules"] == []
    assert facts["counted"] == facts["pid"]
    assert facts["imported"] == list(launcher.KERNEL_IMPORTS) and facts["frozen"] > 0


REFUSAL = """
import threading
from mnist_grader import zygote

before = zygote._os_threads()
zygote._refuse_new_threads(before)  # none started: forking is safe
threading.Thread(target=threading.Event().wait, daemon=True).start()
try:
    zygote._refuse_new_threads(before)
except RuntimeError as refused:
    print("refused:", refused)
"""


def test_the_template_refuses_to_fork_once_an_import_started_a_thread():
    # In a new Python, as the template is: this test process runs threads of its own (tqdm's).
    env = {**os.environ, "PYTHONPATH": str(zygote.PACKAGE_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", REFUSAL], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("refused: the imports started threads"), done.stderr
