"""The grader's kernel client (mnist_grader.session.ReadyKernelClient): ready as soon as a real
kernel answers on both channels (jupyter_client's own client then listens to a silent IOPub for
0.2 s more), with IOPub carrying the kernel's output; a kernel that dies or stays silent is
reported as jupyter_client reports it. What it saves: make bench's cold table (kernel start)."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

from mnist_grader.session import ReadyKernelClient

CLIENT = f"{ReadyKernelClient.__module__}.{ReadyKernelClient.__name__}"


def _manager(tmp_path, argv: list[str] | None = None) -> AsyncKernelManager:
    """A manager for this venv's own ipykernel, or for a process that runs `argv` instead."""
    spec_dir = tmp_path / "kernels" / "under-test"
    spec_dir.mkdir(parents=True)
    argv = argv or [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "under test", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    return AsyncKernelManager(
        kernel_name="under-test", kernel_spec_manager=specs, client_class=CLIENT
    )


async def _first_output(km: AsyncKernelManager, iopub_first: bool = True) -> str:
    """Start the kernel, wait until it is ready, run one print: what IOPub brought back.
    `iopub_first=False`: IOPub connects only when the client first reads it, after the kernel's
    first answer, whose IOPub messages are then lost for sure."""
    await km.start_kernel()
    client = km.client()
    assert isinstance(client, ReadyKernelClient)
    client.start_channels(iopub=iopub_first)
    try:
        await client.wait_for_ready(timeout=60)
        msg_id = client.execute("print('first output')")
        text = ""
        while True:
            message = await client.get_iopub_msg(timeout=30)
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "stream":
                text += message["content"]["text"]
            if message["content"].get("execution_state") == "idle":
                return text
    finally:
        client.stop_channels()
        await km.shutdown_kernel(now=True)


@pytest.mark.parametrize("iopub_first", [True, False], ids=["as nbclient starts", "IOPub last"])
def test_when_ready_the_first_output_comes_back(tmp_path, iopub_first):
    # "IOPub last": the first request's idle is lost, so the client must ask again to be ready.
    output = asyncio.run(_first_output(_manager(tmp_path), iopub_first))
    assert output == "first output\n"


def test_a_kernel_that_dies_before_answering_is_reported(tmp_path):
    km = _manager(tmp_path, [sys.executable, "-c", "raise SystemExit(3)", "{connection_file}"])
    with pytest.raises(RuntimeError, match="died before replying"):
        asyncio.run(_first_output(km))


def test_a_silent_kernel_runs_out_its_time(tmp_path):
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)", "{connection_file}"]
    km = _manager(tmp_path, sleeper)

    async def wait() -> None:
        await km.start_kernel()
        client = km.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=1.5)
        finally:
            client.stop_channels()
            await km.shutdown_kernel(now=True)

    with pytest.raises(RuntimeError, match="didn't respond in 1.5 seconds"):
        asyncio.run(wait())
