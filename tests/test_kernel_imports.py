"""What a cold kernel runs before the student's first cell (mnist_grader.launcher.KERNEL_MAIN): the
modules every kernel imports, loaded with the garbage collector paused and then frozen, and a
kernel that starts all the same when one of them cannot be imported, leaving the error to the
student's own import. (Kernels in the sandbox, cold and warm: tests/test_zygote.py.)"""

from __future__ import annotations

import asyncio
import json
import sys

from mnist_grader import launcher
from tests.test_ready_client import _manager

FACTS = """
import gc, json, os, sys
print(json.dumps({
    "imported": [name for name in KERNEL_IMPORTS if name in sys.modules],
    "frozen": gc.get_freeze_count(),
    "collector_on": gc.isenabled(),
    "student_folder_on_path": "" in sys.path or os.getcwd() in sys.path,
}))
"""


def _run_in_kernel(tmp_path, code: str, env: dict | None = None) -> tuple[str, list[str]]:
    """Start a kernel as the cold launcher execs it, with the grader's own client, and run
    `code`: (its output, its errors)."""
    km = _manager(tmp_path, [sys.executable, "-c", launcher.KERNEL_MAIN, "-f", "{connection_file}"])
    output, errors = [], []

    def collect(message):
        if message["msg_type"] == "stream":
            output.append(message["content"]["text"])
        elif message["msg_type"] == "error":
            errors.append(f"{message['content']['ename']}: {message['content']['evalue']}")

    async def run() -> None:
        await km.start_kernel(cwd=str(tmp_path), **({"env": env} if env is not None else {}))
        client = km.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=120)
            await client.execute_interactive(code, timeout=60, output_hook=collect)
        finally:
            client.stop_channels()
            await km.shutdown_kernel(now=True)

    asyncio.run(run())
    return "".join(output), errors


def test_a_cold_kernel_starts_with_its_imports_done_and_frozen(tmp_path):
    code = FACTS.replace("KERNEL_IMPORTS", repr(launcher.KERNEL_IMPORTS))
    output, errors = _run_in_kernel(tmp_path, code)
    assert errors == []
    facts = json.loads(output)
    assert facts["imported"] == list(launcher.KERNEL_IMPORTS)
    assert facts["frozen"] > 0 and facts["collector_on"]
    assert facts["student_folder_on_path"]  # `import mnist_exercise` works as in Jupyter


def test_a_module_that_cannot_be_imported_is_the_student_cells_error(tmp_path):
    broken = tmp_path / "broken"
    (broken / "keras").mkdir(parents=True)
    (broken / "keras" / "__init__.py").write_text("raise ImportError('keras is broken here')\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(broken)}
    output, errors = _run_in_kernel(tmp_path, "import keras", env)
    assert errors == ["ImportError: keras is broken here"]
