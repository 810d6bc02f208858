"""Grading one submission: the single place where a notebook becomes a score.

grade_submission(notebook, settings) -> Report. The steps:
1. read the notebook's code cells (mnist_grader.notebook); a file that is not a notebook scores 0
   with the reason;
2. run them in a sandboxed kernel, each cell under a time limit (mnist_grader.session);
3. run every check, public and hidden, in this process, calling the student's functions in the
   sandbox on inputs chosen now (mnist_grader.checks);
4. return a Report, which mnist_grader.results writes as Gradescope's results.json.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import checks, evaluator, sandbox
from .settings import Settings, Status  # noqa: F401 - Settings is the engine's interface too

logger = logging.getLogger(__name__)  # the grading child's stderr: OUT/<submission>/grader.log

# Imported where used (notebook, session, wire, numpy): the batch parent imports this module for
# Settings and Report only, and stays small.

# One submission's grading folder: the kernel's answers (at most 256 MB as float64, see wire) and,
# when grading a single file by hand, a copy of the data (55 MB).
GRADING_FOLDER_MB = 512


@dataclass
class Report:
    submission: str
    status: Status
    questions: list  # checks.QuestionResult
    notes: list = field(default_factory=list)  # plain-language problems seen while running
    seconds: float = 0.0
    check_seed: int | None = None  # the hidden checks' random inputs (mnist_exercise.check_seed)

    @property
    def score(self) -> float:
        return round(sum(q.score for q in self.questions), 4)

    @property
    def max_score(self) -> float:
        return round(sum(q.max_score for q in self.questions), 4)


def exercise_module(checks_dir: Path):
    """The checks build's support module (which dataset, how to read it), loaded from its file.

    Under a name of its own per build, so that one process can hold two builds (MNIST and a
    variant) without one's `mnist_exercise` standing in for the other's.
    """
    path = (checks_dir / "mnist_exercise.py").resolve()
    name = f"mnist_exercise_{abs(hash(str(path))):x}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while it runs
        spec.loader.exec_module(module)
    return sys.modules[name]


def use_exercise_module(settings: Settings):
    """The checks (and the wire) import mnist_exercise: the checks build's module, loaded from
    its file once and registered under that name, never one found on sys.path."""
    from . import wire

    mnist_exercise = exercise_module(settings.checks_dir)
    sys.modules["mnist_exercise"] = mnist_exercise

    os.environ[mnist_exercise.DATA_ENV_VAR] = str(settings.data_file.resolve())
    (x_train, y_train), (x_test, y_test) = mnist_exercise.exercise_data()
    wire.register_dataset({"x_train": x_train, "y_train": y_train, "x_test": x_test})
    return mnist_exercise


def readable_in_place(data_file: Path) -> bool:
    """Whether sandboxed kernels may map the dataset's .npy files where they are, uncopied: a
    folder of them (the Gradescope zip's data/<dataset>/) that only this user (or root) can
    change, every folder above it too, the files readable and the folders searchable by anyone,
    outside the shared temporary folders (a sandboxed kernel sees a private, empty one there).
    Otherwise make_data_cache copies the data (55 MB, onto a tmpfs on Gradescope)."""
    from .launcher import SHARED_TMP_DIRS

    folder = data_file.resolve()
    if not (folder / "x_train.npy").is_file() or any(
        folder.is_relative_to(Path(tmp).resolve()) for tmp in SHARED_TMP_DIRS
    ):
        return False
    me = os.geteuid()
    for path in [*folder.iterdir(), folder, *folder.parents]:
        info = path.lstat()
        if path.parent == folder and not (stat.S_ISREG(info.st_mode) and path.suffix == ".npy"):
            return False  # only the arrays: nothing else of the folder's reaches the kernel
        readable = stat.S_IXOTH if stat.S_ISDIR(info.st_mode) else stat.S_IROTH
        if (
            info.st_uid not in (me, 0)
            or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
            or info.st_mode & readable != readable
        ):
            return False
    return True


def make_data_cache(data_file: Path, folder: Path, checks_dir: Path) -> Path:
    """The dataset as uncompressed .npy files that sandboxed kernels can read and not change.

    Made once per batch in a folder of the grader's (the original may sit where the sandbox's
    user cannot go): every kernel and grading process then maps these files instead of
    decompressing the data again (1.2 s and 55 MB each time for mnist.npz).
    """
    import numpy as np

    exercise = exercise_module(checks_dir)
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    if exercise.data_format(data_file) == "npy":  # already uncompressed (the Gradescope zip)
        for name in exercise.ARRAYS:
            shutil.copyfile(data_file / f"{name}.npy", folder / f"{name}.npy")
    else:
        for name, array in exercise.read_arrays(data_file).items():
            np.save(folder / f"{name}.npy", array)
    for name in exercise.ARRAYS:
        (folder / f"{name}.npy").chmod(0o444)
    folder.parent.chmod(0o711)
    return folder


def _prepare_sandbox(root: Path) -> Path:
    """root (0711, root's) / sandbox: the kernel's folder (its launcher gives it to the uid)."""
    root.chmod(0o711)
    workdir = root / "sandbox"
    workdir.mkdir()
    return workdir


def limit_memory(extra_mb: int) -> int:
    """Cap this process's address space at what it holds now plus `extra_mb`; returns the cap.

    Only the soft limit: a cold kernel started from here (its launcher, still root) raises its
    own to --memory-mb. Taken relative to now because what the process holds at the start
    (libraries, one stack per BLAS thread, the data) grows with the machine's cores.
    """
    import resource

    with open("/proc/self/status") as status:
        size_kb = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = size_kb * 1024 + extra_mb * 2**20
    cap = cap if hard == resource.RLIM_INFINITY else min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    return cap


def out_of_memory(path: Path, settings: Settings) -> Report:
    """The report of a submission whose grading ran out of the grader's memory outside any one
    check (the checks' own run out of it one at a time: checks.run_checks)."""
    reason = could_not_grade(f"checking it needed more memory than the grader allows: "
                             f"{checks.TOO_LARGE}")  # fmt: skip
    test_files = checks.load_test_files(settings.checks_dir / "tests")
    return Report(
        path.name,
        Status.GRADING_OUT_OF_MEMORY,
        checks.zero_results(test_files, reason),
        [reason],
    )


def grade_submission(path: Path, settings: Settings, own_process: bool = False) -> Report:
    """own_process: this process grades this submission alone (grade-one), and so may cap its
    own memory (--grader-memory-mb) once the data is loaded."""
    from . import notebook, remote
    from . import session as sess
    from .phases import PhaseClock

    started = time.monotonic()
    clock = PhaseClock()
    clock.mark("grader start and imports")
    exercise = use_exercise_module(settings)
    test_files = checks.load_test_files(settings.checks_dir / "tests")
    if own_process:
        cap = limit_memory(settings.grader_memory_mb)
        logger.info("this process's address space is capped at %d MB", cap // 2**20)
    clock.mark("data and checks")
    try:
        cells = notebook.read_code_cells(path)
    except notebook.UnreadableSubmission as problem:
        reason = could_not_grade(problem)
        return Report(
            path.name,
            Status.UNREADABLE,
            checks.zero_results(test_files, reason),
            [reason],
            time.monotonic() - started,
        )

    seed = check_seed(cells, test_files)
    os.environ["MNIST_CHECK_SEED"] = str(seed)  # this process grades this one submission
    uid = sandbox.slot_uid(settings.slot)
    deadline = started + settings.total_seconds
    with (
        tempfile.TemporaryDirectory(prefix="mnist-grade-", dir=sandbox.work_root()) as tmp,
        sandbox.size_limited(Path(tmp), GRADING_FOLDER_MB),
    ):
        workdir = _prepare_sandbox(Path(tmp))
        module = settings.checks_dir / "mnist_exercise.py"
        if exercise.data_format(settings.data_file) != "npy":  # not from a batch (grade-one)
            data = make_data_cache(settings.data_file, Path(tmp) / "data", settings.checks_dir)
            settings = replace(settings, data_file=data)
        kernel_env = {
            exercise.DATA_ENV_VAR: str(settings.data_file.resolve()),
            "MNIST_EPOCHS": str(settings.epochs),
            "MNIST_TRAIN_IMAGES": str(settings.train_images),
        }
        clock.mark("notebook read")
        with sess.KernelSession(
            workdir, module, uid, settings, deadline, kernel_env, clock
        ) as session:
            clock.mark("kernel start", session.kernel_pid())
            session.run_cells(cells)
            explain_grading_size(session.log, cells, exercise, settings.train_images)
            calls = remote.RemoteCalls(session)
            calls.load_probe()
            environment = _environment(calls, checks.parameters(test_files))
            clock.mark("probe loaded", session.kernel_pid())
            exercise.keras_runner = functools.partial(
                evaluator.run_model,
                folder=Path(tmp),
                slot=settings.slot,
                memory_mb=settings.memory_mb,
                seconds=settings.model_seconds,
            )
            try:
                questions = checks.run_checks(
                    test_files,
                    environment,
                    done=lambda question: clock.mark(f"checks of {question}", session.kernel_pid()),
                )
            finally:
                exercise.keras_runner = None
            log = session.log
        logger.info("checks done after %.1f s: %s", time.monotonic() - started, log.status)
        if settings.debug:
            _keep_for_debugging(Path(tmp), path.name)
    if sandbox.is_root():
        sandbox.sweep(uid)  # again, after the folder is gone: nothing may outlive grading
    clock.mark("kernel stop and clean-up")
    clock.total()
    status, notes = log.status, log.problems()
    if any(case.out_of_memory for question in questions for case in question.cases):
        notes.append(OUT_OF_MEMORY_NOTE)
        status = Status.GRADING_OUT_OF_MEMORY if status == Status.GRADED else status
    return Report(path.name, status, questions, notes, time.monotonic() - started, seed)


OUT_OF_MEMORY_NOTE = (
    "some checks needed more memory than the grader allows, and failed: "
    f"{checks.TOO_LARGE} (each such check says so below)"
)


def explain_grading_size(log, cells, exercise, train_images: int) -> None:
    """A cell that failed with the full training set's size in it (`x_train.reshape((60000,
    784))`) failed because grading trains on fewer images: its report says so, and what to
    write instead. Why not give the notebook every image: training on them would cost every
    submission's grading several times the CPU, for a bar that fewer images clear."""
    full = len(exercise.exercise_data()[0][0])
    if train_images >= full:
        return
    spellings = {str(full), f"{full:_}", f"{full:,}"}
    for report, (_, source) in zip(log.cells, cells, strict=False):
        if report.status == "error" and any(s in report.detail or s in source for s in spellings):
            report.detail += (
                f" (while grading, x_train holds the first {train_images} training images, "
                f"not {full}: write x_train.shape[0] or len(x_train) instead of {full})"
            )


def could_not_grade(why, graders_fault: bool = False) -> str:
    """The one line a student reads when nothing of the notebook could be graded."""
    line = f"Your submission could not be graded: {why}."
    if graders_fault:
        line += " Please tell your instructor; this is the grader's fault, not yours."
    return line


def _keep_for_debugging(folder: Path, name: str) -> None:
    """--debug: a root-only copy of the grading folder (the kernelspec, the checks' arguments,
    the kernel's answers), made before the folder and its tmpfs go."""
    kept = Path(tempfile.mkdtemp(prefix=f"mnist-debug-{name}-", dir=sandbox.work_root()))
    shutil.copytree(folder, kept, symlinks=True, dirs_exist_ok=True)
    kept.chmod(0o700)  # copytree gave it the grading folder's 0711
    logger.info("--debug: the sandbox's folder is kept in %s", kept)


def check_seed(cells, test_files) -> int:
    """The seed of the hidden checks' random inputs: the same for the same submission and the
    same checks (a regrade gives the same feedback), and unknowable to the student's code, which
    cannot read the hidden checks it is mixed with."""
    digest = hashlib.sha256(json.dumps(cells).encode())
    for test_file in test_files:
        digest.update(test_file.source.encode())
    return int.from_bytes(digest.digest()[:4], "big")


def _environment(calls, names: set[str]):
    """name -> the student's function (as a proxy) or value (as data), fetched when first asked."""
    from . import remote
    from . import session as sess

    log = calls.kernel.log
    try:
        kinds = calls.kinds(sorted(names))
    except Exception:  # the kernel is gone: every name is missing, every check says why
        kinds = {}
    cache: dict = {}

    def lookup(name: str):
        if log.kernel_lost and kinds.get(name) is None:
            raise sess.KernelGone(log.kernel_lost)
        kind = kinds.get(name, "missing")
        if kind == "function":
            return remote.RemoteFunction(calls, name)
        if kind == "missing":  # as otter passes it in the notebook: the check says what's wrong
            return None
        if name not in cache:
            cache[name] = calls.fetch(name)
        return cache[name]

    return lookup
