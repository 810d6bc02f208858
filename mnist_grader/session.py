"""One submission's kernel: start, stop, restart, and run its cells under time limits.

`KernelSession` starts a real Jupyter kernel (ipykernel, through nbclient) inside the sandbox
(mnist_grader.launcher), runs the submission's code cells one by one, each with a time limit
(a cell that runs over is interrupted and the rest still run; one that kills the kernel is
skipped, and a new kernel replays the cells before it). The grader's calls into the kernel, once
the cells ran, are mnist_grader.remote's.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty

import nbformat
import zmq
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from . import fontcache, progress, sandbox, wire
from .notebook import cell_label
from .settings import Status

KERNEL_NAME = "mnist-grader-sandbox"
# A kernel answers within seconds (TensorFlow imported first); one silent this long won't.
STARTUP_SECONDS = 60
MAX_RESTARTS = 2  # a kernel that dies or ignores interrupts is replaced, at most this often
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
logger = logging.getLogger(__name__)  # the grading child's stderr: OUT/<submission>/grader.log


class KernelGone(Exception):
    """The kernel died, stopped answering, or the submission's time budget ran out."""

    raised_by_grader = True  # the checks report it as it is (mnist_exercise.call_student)


@dataclass
class CellReport:
    label: str  # the cell as the student sees it (mnist_grader.notebook.cell_label)
    status: str  # of the cell: "ok", "error", "timeout", "kernel died" or "not run"
    detail: str = ""


ERROR_SUMMARY_CHARACTERS = 300
_NOT_MEANINGFUL = ("File ", "[[", "Detected at node", "Arguments received", "•")


def error_summary(ename, evalue) -> str:
    """An exception as one bounded line a student can act on: its first line and, when more
    follows, its last meaningful line, which often holds the cause (TensorFlow's "Graph
    execution error:" is followed by a traceback and then "Received a label value of 9 which is
    outside the valid range of [0, 5)")."""
    lines = [line.strip() for line in str(evalue).splitlines()]
    meaningful = [line for line in lines if line and not line.startswith(_NOT_MEANINGFUL)]
    parts = meaningful[:1] + meaningful[-1:] if len(meaningful) > 1 else meaningful
    text = wire.one_line(f"{ename}: {' '.join(parts)}".strip(), ERROR_SUMMARY_CHARACTERS + 1)
    if len(text) > ERROR_SUMMARY_CHARACTERS:
        text = text[: ERROR_SUMMARY_CHARACTERS - 3] + "..."
    return text


@dataclass
class SessionLog:
    cells: list = field(default_factory=list)
    kernel_lost: str = ""  # why the kernel stopped being usable, if it did
    status: Status = Status.GRADED  # KERNEL_DIED / OUT_OF_TIME when the kernel was lost

    def lose(self, status: Status, reason: str) -> None:
        self.status, self.kernel_lost = status, self.kernel_lost or reason

    def problems(self) -> list[str]:
        lines = [
            f"{c.label}: {c.status}{': ' + c.detail if c.detail else ''}"
            for c in self.cells
            if c.status != "ok"
        ]
        if self.kernel_lost:
            lines.append(self.kernel_lost)
        return lines


class _QuietClient(NotebookClient):
    """Keeps only error outputs: a submission that prints gigabytes must not fill our memory."""

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] == "error":
            content = msg["content"]
            ename = wire.one_line(content.get("ename"), 100)  # a class name can hold \n
            outs.append(
                nbformat.v4.new_output(
                    "error",
                    ename=ename,
                    evalue=error_summary(ename, content.get("evalue")),
                    traceback=[],
                )
            )
        return None


class ReadyKernelClient(AsyncKernelClient):
    """jupyter_client's kernel client, ready as soon as the kernel has answered a kernel_info
    request on both channels: the reply on shell, and the end of its work ("idle") on IOPub.

    By hand because jupyter_client's own wait_for_ready ends by reading IOPub until it has been
    silent for 0.2 s, which every kernel start and restart spent idle (make bench's cold table,
    its kernel start row). What that flush would drop belongs to no cell: nbclient ignores it."""

    IOPUB_SECONDS = 0.2  # jupyter_client's own wait for IOPub to show it is connected
    # The client connects before the kernel listens, and zmq tries again after this long
    # (its default: 100 ms, each time a kernel starts).
    RECONNECT_MS = 10

    def start_channels(self, *args, **kwargs) -> None:
        self.context.setsockopt(zmq.RECONNECT_IVL, self.RECONNECT_MS)  # for the sockets to come
        super().start_channels(*args, **kwargs)

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            self.kernel_info()
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
            except Empty:
                reply = None
            # A request's IOPub messages sent before IOPub was connected are lost: then, once
            # it is (ipykernel says welcome, or time passes), ask again.
            if reply is not None and reply["msg_type"] == "kernel_info_reply":
                if await self._kernel_info_seen_on_iopub():
                    self._handle_kernel_info_reply(reply)
                    return
            if not await self.is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")

    async def _kernel_info_seen_on_iopub(self) -> bool:
        """True on a kernel_info request's idle status; False when IOPub has just connected
        (the welcome of ipykernel's IOPub) or stays silent."""
        until = time.monotonic() + self.IOPUB_SECONDS
        while (left := until - time.monotonic()) > 0:
            try:
                message = await self.iopub_channel.get_msg(timeout=left)
            except Empty:
                return False
            if message["msg_type"] == "iopub_welcome":
                return False
            if (
                message["msg_type"] == "status"
                and message["content"].get("execution_state") == "idle"
                and message.get("parent_header", {}).get("msg_type") == "kernel_info_request"
            ):
                return True
        return False


def _write_kernelspec(
    root: Path, uid: int, workdir: Path, module: Path, limits, env
) -> KernelSpecManager:
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    # A warm kernel: a stub asks the batch's template (mnist_grader.zygote) for a fork that enters
    # the same sandbox with the same arguments; cold: the launcher enters it and execs Python.
    if limits.kernel_template:
        launcher = ["mnist_grader.zygote", "kernel", "--socket", limits.kernel_template]
    else:
        launcher = ["mnist_grader.launcher"]
    argv = [
        sys.executable,
        "-m",
        *launcher,
        "--uid",
        str(uid),
        "--dir",
        str(workdir),
        "--module",
        str(module),
        "--memory-mb",
        str(limits.memory_mb),
        "--cpu-seconds",
        str(limits.cpu_seconds),
        "-f",
        "{connection_file}",
    ]
    if (font_list := fontcache.prepare()) is not None:
        argv[-2:-2] = ["--font-list", str(font_list)]
    spec = {
        "argv": argv,
        "display_name": "sandbox",
        "language": "python",
        "env": {"PYTHONPATH": str(PACKAGE_ROOT), **env},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(root / "kernels")])


class KernelSession:
    """Use as a context manager; everything the kernel started is gone when it exits."""

    def __init__(
        self,
        workdir: Path,
        module: Path,
        uid: int,
        limits,
        deadline: float,
        kernel_env: dict,
        clock=None,
    ):
        self.workdir, self.uid, self.limits, self.deadline = workdir, uid, limits, deadline
        self.clock = clock  # mnist_grader.phases.PhaseClock: each cell is a phase of grader.log
        # Beside the kernel's folder, in root's: the kernel cannot swap them for links of its own
        # (it may write into out/, whose files are read without following links).
        self.inbox, self.outbox = workdir.parent / "in", workdir.parent / "out"
        self.log = SessionLog()
        self.restarts = 0
        self.nb = nbformat.v4.new_notebook()
        self.ksm = _write_kernelspec(workdir.parent, uid, workdir, module, limits, kernel_env)
        self.km = None
        self.warm_kernels: dict[int, int] = {}  # a warm kernel's stub -> the kernel (its fork)
        self.client = _QuietClient(
            self.nb,
            timeout=limits.cell_seconds,
            startup_timeout=STARTUP_SECONDS,
            interrupt_on_timeout=True,
            allow_errors=True,
            kernel_name=KERNEL_NAME,
            error_on_timeout={"ename": "Timeout", "evalue": "time limit"},
        )

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self):
        self.inbox.mkdir()
        self.outbox.mkdir()
        if sandbox.is_root():
            shutil.chown(self.outbox, self.uid, sandbox.NOGROUP)
        try:
            self._start_kernel()
        except RuntimeError:  # it died or stayed silent before running anything: once more
            self._stop_kernel()
            self._start_kernel()
        return self

    def __exit__(self, *exc):
        self._stop_kernel()
        return False

    def _start_kernel(self) -> None:
        # A new manager each time: shutting one down destroys its zmq context.
        self.km = AsyncKernelManager(
            kernel_name=KERNEL_NAME,
            kernel_spec_manager=self.ksm,
            client_class=f"{__name__}.ReadyKernelClient",
        )
        self.client.km = self.km
        # The kernel's own stdout/stderr (TensorFlow's logs, a student's os.write) go nowhere.
        self.client.start_new_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client.start_new_kernel_client()
        logger.info("kernel started as uid %s (process %s)", self.uid, self._kernel_pid()[0])

    def _kernel_pid(self):
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        return getattr(process, "pid", None), process

    def kernel_pid(self) -> int | None:
        """The kernel's process: the one jupyter_client started, or for a warm kernel (whose
        stub that is) the template's fork, found once as the top process of the sandbox uid."""
        pid = self._kernel_pid()[0]
        if pid is None or not self.limits.kernel_template:
            return pid
        if pid not in self.warm_kernels:
            import psutil

            ours = {
                proc.pid: proc.info["ppid"]
                for proc in psutil.process_iter(["uids", "ppid"])
                if proc.info["uids"] and proc.info["uids"].real == self.uid
            }
            tops = [child for child, parent in ours.items() if parent not in ours]
            if len(tops) != 1:
                return None
            self.warm_kernels[pid] = tops[0]
        return self.warm_kernels[pid]

    def _stop_kernel(self) -> None:
        _, process = self._kernel_pid()
        try:
            if self.client.kc is not None:
                self.client.kc.stop_channels()
            if self.km is not None:
                run_sync(self.km.shutdown_kernel)(now=True)
        except Exception as error:
            logger.info("stopping the kernel: %s: %s", type(error).__name__, error)
        if process is not None:
            logger.info("kernel stopped (exit status %s)", process.poll())
        if sandbox.is_root():
            sandbox.sweep(self.uid)

    def _restart(self, replay: list[str]) -> None:
        """A fresh kernel that has run `replay` again: the cells before the one that broke it.
        Left lost (so the rest is not run) when restarts are used up or time is short."""
        if self.restarts >= MAX_RESTARTS or self._remaining() < 30:
            return
        self.restarts += 1
        logger.info("restarting the kernel (%d of %d), replaying %d cells", self.restarts,
                 MAX_RESTARTS, len(replay))  # fmt: skip
        self._stop_kernel()
        self.log.kernel_lost, self.log.status = "", Status.GRADED
        try:
            self._start_kernel()
            for source in replay:
                self.run(source, self.limits.cell_seconds, "a cell run again after a restart")
        except (KernelGone, RuntimeError):
            self.log.lose(Status.KERNEL_DIED, "the notebook's kernel could not restart")
            self.restarts = MAX_RESTARTS

    # -- running code ---------------------------------------------------------------------------
    def _remaining(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, source: str, timeout: float, step: str = "a cell") -> tuple[str, str]:
        """Run `source` as a cell: ("ok" | "error" | "timeout", detail). `step`: what it is, for
        the batch's progress bar (mnist_grader.progress)."""
        if self.log.kernel_lost:
            raise KernelGone(self.log.kernel_lost)
        budget = min(timeout, self._remaining())
        if budget <= 1:
            self.log.lose(
                Status.OUT_OF_TIME, "grading stopped: the submission used its total time limit"
            )
            raise KernelGone(self.log.kernel_lost)
        cell = nbformat.v4.new_code_cell(source)
        self.nb.cells.append(cell)
        self.client.timeout = int(budget)
        started = time.monotonic()
        progress.started(step, budget)
        try:
            self.client.execute_cell(cell, len(self.nb.cells) - 1)
        except DeadKernelError:
            self.log.lose(
                Status.KERNEL_DIED,
                "the notebook's kernel stopped (it crashed, exited, or ran out of memory)",
            )
            raise KernelGone(self.log.kernel_lost) from None
        finally:
            progress.ended()
        errors = [o for o in cell.outputs if o.output_type == "error"]
        cell.outputs = []
        if time.monotonic() - started >= budget - 0.5 or (errors and errors[0].ename == "Timeout"):
            self._recover_after_timeout()
            return "timeout", f"did not finish within {int(budget)} s"
        if errors:
            return "error", errors[0].evalue
        return "ok", ""

    def _recover_after_timeout(self) -> None:
        """After an interrupt, make sure the kernel answers again; otherwise give it up."""
        cell = nbformat.v4.new_code_cell("pass")
        self.nb.cells.append(cell)
        self.client.timeout = 15
        progress.started("the kernel's answer after an interrupt", self.client.timeout)
        try:
            started = time.monotonic()
            self.client.execute_cell(cell, len(self.nb.cells) - 1)
            if time.monotonic() - started < 14:
                return
        except DeadKernelError:
            pass
        finally:
            progress.ended()
        self.log.lose(
            Status.OUT_OF_TIME,
            "the notebook stopped responding after a cell ran over its time "
            "limit, so the checks after it could not run",
        )

    def run_cells(self, sources: list[tuple[int, str]]) -> None:
        """Run every cell. A cell that kills the kernel, or hangs it past an interrupt, is
        reported and skipped: a new kernel runs the cells before it again, and goes on."""
        ran: list[str] = []
        for position, source in sources:
            label = cell_label(position, source)
            if self.log.kernel_lost:  # given up on (restarts used up, or out of time)
                self.log.cells.append(CellReport(label, "not run"))
                continue
            started = time.monotonic()
            try:
                status, detail = self.run(source, self.limits.cell_seconds, f"cell {position}")
            except KernelGone:
                status, detail = "kernel died", "it stopped the kernel (crash, exit or memory)"
                if self._out_of_time():
                    status, detail = "not run", self.log.kernel_lost
            if not self.log.kernel_lost:
                self.log.cells.append(CellReport(label, status, detail))
                if status in ("ok", "error"):
                    ran.append(source)
            elif self._out_of_time():
                self.log.cells.append(CellReport(label, status, detail))
            else:
                self.log.cells.append(CellReport(label, status, detail + "; it was skipped"))
                self._restart(ran)
            seconds = time.monotonic() - started
            logger.info("%s: %s in %.1f s %s", label, status, seconds, detail)
            if self.clock is not None:
                self.clock.mark(label, self.kernel_pid())

    def _out_of_time(self) -> bool:
        return self.log.status == Status.OUT_OF_TIME and self._remaining() <= 1
