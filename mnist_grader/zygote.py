"""Warm kernels for a batch: a template process that has imported what every kernel imports, and
a fork of it per kernel (the Android "zygote" pattern), instead of a new Python that imports
TensorFlow again for every submission.

- `template(folder, env)` (the batch's parent) starts `python -m mnist_grader.zygote serve`: it
  imports what every kernel imports (mnist_grader.launcher.KERNEL_IMPORTS, as a cold kernel does:
  numpy, TensorFlow/Keras, matplotlib (Agg), ipykernel), and nothing else: no checks,
  solutions, grades or submission (it never reads a file of the grading run), then listens on a
  unix socket in a folder of the grader's that only its own uid may use.
- The kernelspec runs `python -m mnist_grader.zygote kernel --socket S <the sandbox launcher's
  arguments>` (a stub) instead of `python -m mnist_grader.launcher ...`. The stub sends the
  template its arguments, its environment's kernel variables and its stdin/stdout/stderr; the
  template forks; the fork closes everything of the template's, enters the sandbox exactly as
  the cold launcher does (mnist_grader.launcher.enter: session, mounts, limits, uid, folder),
  takes the kernel's clean environment and only then starts ipykernel. Every kernel is a new
  fork; none is reused.
- jupyter_client manages the stub as if it were the kernel: the stub passes on the signals it
  gets (interrupts) through a pidfd of the kernel, and exits with the kernel's exit code, which
  the template reports. When the stub dies (killed by the manager), the template kills the
  kernel; the grader's sweep of the uid follows anyway.

Why forking after the imports is safe here: importing numpy starts one OpenBLAS worker thread,
which OpenBLAS itself stops around fork (pthread_atfork); TensorFlow, Keras, matplotlib and
ipykernel start none at import (their thread pools come with the first operation, in the
kernel). `serve` checks that before it answers: it refuses to start if any other thread runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

READY = b"ready\n"
STARTUP_SECONDS = 120  # importing TensorFlow takes seconds; on a loaded machine, many
MAX_REQUEST_BYTES = 65536
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


# -- the batch's side -----------------------------------------------------------------------------
@contextlib.contextmanager
def template(folder: Path, env: dict):
    """Run a template for the duration of the block; yields its socket's path.

    `folder` is the grader's own (mode 700): the socket in it can be reached by its uid only,
    and the template also checks each caller's uid (SO_PEERCRED).
    """
    from . import fontcache, launcher

    home = folder / "home"  # the template's own caches (matplotlib's font list)
    home.mkdir(mode=0o700)
    path = folder / "template.sock"
    (home / "tmp").mkdir(mode=0o700)
    prepared = fontcache.prepare()
    if prepared is not None and (font_list := fontcache.read_own(prepared)) is not None:
        (home / "tmp" / font_list[0]).write_bytes(font_list[1])  # its MPLCONFIGDIR
    child_env = launcher.kernel_environment(home, source=env)
    child_env["PYTHONPATH"] = str(PACKAGE_ROOT)
    process = subprocess.Popen(
        [sys.executable, "-m", "mnist_grader.zygote", "serve", "--socket", str(path)],
        env=child_env,
        cwd=home,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        line = _read_line(process, STARTUP_SECONDS)
        if line != READY:
            raise RuntimeError(f"the kernel template did not start ({line!r})")
        yield path
    finally:
        process.kill()  # it holds nothing worth a clean exit; its kernels were shut down already
        process.wait()
        if process.stdout:
            process.stdout.close()


def _read_line(process: subprocess.Popen, seconds: float) -> bytes:
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(seconds):
            return b"(no answer)"
    return process.stdout.readline()


# -- the template ------------------------------------------------------------------------------
def serve(socket_path: Path) -> None:
    import numpy  # noqa: F401 - first: its OpenBLAS workers are the threads fork may meet

    from . import launcher

    threads_after_numpy = _os_threads()
    exec(launcher.PRELOAD, {})  # as a cold kernel imports them (its forks share the frozen heap)
    if missing := [name for name in launcher.KERNEL_IMPORTS if name not in sys.modules]:
        raise RuntimeError(f"the template could not import {missing}")
    _refuse_new_threads(threads_after_numpy)
    base_path = [p for p in sys.path if p not in ("", os.getcwd(), str(PACKAGE_ROOT))]
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path))
    os.chmod(socket_path, 0o600)
    listener.listen(16)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    kernels: dict[socket.socket, tuple[int, int]] = {}  # stub's connection -> (pid, pidfd)
    sys.stdout.buffer.write(READY)
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # nobody reads the pipe after this
    os.close(devnull)
    while True:
        for key, _ in selector.select(timeout=0.2):
            if key.fileobj is listener:
                _accept(listener, selector, kernels, base_path)
            else:  # a stub went away (killed by its manager): so does its kernel
                _forget(key.fileobj, selector, kernels, kill=True)
        _reap(selector, kernels)


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _refuse_new_threads(threads_after_numpy: int) -> None:
    """Fork copies only the calling thread: a thread an import started would be missing in every
    kernel, with whatever lock it held. numpy's OpenBLAS workers are the known exception (OpenBLAS
    stops and restarts them around fork itself); nothing imported after numpy may add one."""
    import threading

    if len(threading.enumerate()) != 1 or _os_threads() != threads_after_numpy:
        raise RuntimeError(
            f"the imports started threads: {threading.enumerate()}, "
            f"{_os_threads()} OS threads (after numpy: {threads_after_numpy})"
        )


def _accept(listener, selector, kernels, base_path) -> None:
    connection, _ = listener.accept()
    try:
        uid = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[
            1
        ]
        if uid != os.getuid():  # only the grader (the stub runs as the grader's uid)
            raise PermissionError(f"uid {uid}")
        connection.settimeout(10)
        message, fds, _, _ = socket.recv_fds(connection, MAX_REQUEST_BYTES, 3)
        if len(fds) != 3:
            raise ValueError("a request comes with stdin, stdout and stderr")
        request = json.loads(message)
    except (OSError, ValueError, PermissionError):
        connection.close()
        return
    pid = os.fork()
    if pid == 0:
        _become_kernel(request, fds, base_path)  # never returns
    for fd in fds:
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    try:
        socket.send_fds(connection, [json.dumps({"pid": pid}).encode() + b"\n"], [pidfd])
    except OSError:
        os.kill(pid, signal.SIGKILL)
    connection.settimeout(None)
    kernels[connection] = (pid, pidfd)
    selector.register(connection, selectors.EVENT_READ)


def _reap(selector, kernels) -> None:
    """Collect ended kernels and tell their stubs how they ended."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        for connection, (kernel, _) in list(kernels.items()):
            if kernel == pid:
                with contextlib.suppress(OSError):
                    connection.sendall(
                        json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode()
                    )
                _forget(connection, selector, kernels, kill=False)


def _forget(connection, selector, kernels, kill: bool) -> None:
    pid, pidfd = kernels.pop(connection)
    selector.unregister(connection)
    if kill:
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    os.close(pidfd)
    connection.close()


def _become_kernel(request: dict, fds: list[int], base_path: list[str]) -> None:
    """In the fork: drop everything of the template's, enter the sandbox, run ipykernel."""
    code = 1
    try:
        for number, fd in enumerate(fds):
            os.dup2(fd, number)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the listener, other stubs' connections
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as a new Python has them
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        from . import launcher

        os.environ.clear()
        os.environ.update(request["environ"])
        workdir = launcher.enter(launcher.launcher_arguments(request["argv"]))
        environment = launcher.kernel_environment(workdir)
        code = _run_kernel(workdir, environment, base_path, launcher.KERNEL_OPTIONS)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # noqa: BLE001 - nothing may return into the template's loop
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _run_kernel(workdir: Path, environment: dict, base_path: list[str], options=()) -> int:
    """ipykernel, in this process, as `python -m ipykernel_launcher -f kernel.json OPTIONS` would
    run it in `workdir` with `environment`."""
    import random
    import tempfile as tempfile_module

    import numpy

    os.environ.clear()
    os.environ.update(environment)
    tempfile_module.tempdir = None  # computed again from TMPDIR, the kernel's own
    sys.path[:] = [str(workdir), *base_path]
    for name in [name for name in sys.modules if name.split(".")[0] == "mnist_grader"]:
        del sys.modules[name]  # the grader's code is none of the kernel's business
    # Every fork starts with the template's random state: give each its own, as a new Python has.
    random.seed()
    numpy.random.seed()
    sys.argv = ["ipykernel_launcher", "-f", str(workdir / "kernel.json"), *options]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance(argv=sys.argv[1:])
    return 0


# -- the stub (what the kernelspec runs) ---------------------------------------------------------
def stub(socket_path: Path, launcher_argv: list[str]) -> int:
    """Ask the template for a kernel with these sandbox arguments, then stand for it."""
    from . import launcher

    environ = {name: os.environ[name] for name in launcher.KERNEL_ENV_KEEP if name in os.environ}
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(socket_path))
    except OSError:  # the template is gone (killed for memory, say): this kernel starts cold
        launcher.launch(launcher_argv)
    request = json.dumps({"argv": launcher_argv, "environ": environ}).encode()
    socket.send_fds(connection, [request], [0, 1, 2])
    message, fds, _, _ = socket.recv_fds(connection, 4096, 1)
    if not fds:
        return 1
    pidfd = fds[0]

    def forward(signum, _frame):
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(pidfd, signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1):
        signal.signal(signum, forward)
    pending = message.split(b"\n", 1)[1] if b"\n" in message else b""
    while True:  # the template's one line about how the kernel ended, or the end of the socket
        data = connection.recv(4096)
        if not data:
            break
        pending += data
    try:
        return int(json.loads(pending)["exit"])
    except (ValueError, KeyError, TypeError):
        return 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mnist_grader.zygote", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serving = commands.add_parser("serve", help="import, then fork a kernel per request")
    serving.add_argument("--socket", type=Path, required=True)
    kernel = commands.add_parser("kernel", help="the kernelspec's stub: one kernel from a template")
    kernel.add_argument("--socket", type=Path, required=True)
    args, rest = parser.parse_known_args(argv)
    if args.command == "serve":
        serve(args.socket)
    else:
        sys.exit(stub(args.socket, rest))


if __name__ == "__main__":
    main()
