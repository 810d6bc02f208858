"""Grading a file or a folder of submissions: one row per submission, always.

Each submission is graded in a child process (`python -m mnist_grader grade-one`), so that nothing
one submission does to the grading process can reach the next; `jobs` children run at once, each
with its own sandbox uid. A child that crashes or overruns still leaves a results.json: this
parent writes one saying so, with a score of 0.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from queue import Queue

from . import checks, fontcache, gradescope_export, inert, launcher, notebook, results, sandbox
from .engine import Report, Settings, could_not_grade, make_data_cache, readable_in_place
from .progress import Steps
from .settings import Status

SUBMISSION_SUFFIXES = (".ipynb", ".zip")
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
# What a sandboxed kernel must not read (it needs only .venv): checks, solutions, history.
PRIVATE_FOLDERS = ("autograder", "solutions", "tests", ".git", "build", "grades")


def private_folders(settings: Settings, out: Path) -> list[Path]:
    """What a sandboxed kernel must not read, as the real folders: the checks, the output, and
    the private folders of this checkout and of the one the venv really lives in (a .venv
    linked from another checkout: the kernel finds that one from realpath(sys.prefix)). Never
    a folder holding what the kernel runs on."""
    checkouts = {PACKAGE_ROOT, Path(sys.prefix).resolve().parent}
    named = [settings.checks_dir, out, *(c / name for c in checkouts for name in PRIVATE_FOLDERS)]
    runs_on = [Path(path).resolve() for path in (sys.prefix, sys.base_prefix, sys.executable)]
    real = dict.fromkeys(path.resolve() for path in named if path.is_dir())
    return [path for path in real if not any(p.is_relative_to(path) for p in runs_on)]


def find_submissions(target: Path) -> list[Path]:
    if target.is_dir():
        return sorted(
            p
            for p in target.iterdir()
            if p.suffix in SUBMISSION_SUFFIXES and not p.name.startswith(".")
        )
    return [target]


def output_names(paths: list[Path]) -> list[str]:
    """A folder name under OUT per submission file: its stem (see output_folders)."""
    return output_folders([path.stem for path in paths])


MAX_FOLDER_BYTES = 200  # of the 255 a file name may have: room for "-2" and "results.json.part"


def output_folders(names: list[str]) -> list[str]:
    """A folder under OUT for each name (a file's stem, an export's folder or metadata key):
    the name shown inert (mnist_grader.inert), never a path ("/" spelled out, no leading dot),
    never one of OUT's own files (a notebook named gradebook.csv.ipynb), at most
    MAX_FOLDER_BYTES, and made unique with -2, -3 (ignoring case, as some disks do)."""
    taken = {name.casefold() for name in results.OUT_FILES}
    folders = []
    for name in names:
        base = inert.name(name).replace("/", "\\x2f") or "_"
        if base.startswith("."):
            base = "\\x2e" + base[1:]
        base = base.encode()[:MAX_FOLDER_BYTES].decode(errors="ignore")
        folder, n = base, 1
        while folder.casefold() in taken:
            n += 1
            folder = f"{base}-{n}"
        taken.add(folder.casefold())
        folders.append(folder)
    return folders


def settings_arguments(settings: Settings) -> list[str]:
    args = []
    for key, value in asdict(settings).items():
        flag = f"--{key.replace('_', '-')}"
        if isinstance(value, bool):
            args += [flag] if value else []
        elif key != "slot" and value != "":
            args += [flag, str(value)]
    return args


BAR_TITLE = "grading"
BAR_TICK_SECONDS = 1  # how often the bar's note on a waiting submission is redrawn
LOG_NAME = "grader.log"
# How long past --total-seconds a grading child may take to write its result before it is killed
# (and a result saying so is written for it).
CHILD_GRACE_SECONDS = 60
MAX_LOG_BYTES = 2 * 2**20  # the end of a longer one is kept: that is where it failed


def _write_log(out: Path, command: list[str], returncode, seconds: float, stderr: bytes) -> None:
    """OUT/<submission>/grader.log: the grading child's whole stderr (its cell timings, the
    kernel's exit, any traceback of the grader's), for the instructor; never in the feedback."""
    if len(stderr) > MAX_LOG_BYTES:
        stderr = b"[... the start is cut]\n" + stderr[-MAX_LOG_BYTES:]
    shown = " ".join(map(inert.name, command))
    header = f"command: {shown}\nexit code: {returncode}, {seconds:.1f} s\n\n"
    # inert: the log quotes the student's errors and the file's name (an ESC, U+202E, bytes
    # that are not UTF-8), and an instructor reads it in a terminal
    text = inert.text(stderr.decode("utf-8", errors="surrogateescape"))
    out.mkdir(parents=True, exist_ok=True)
    (out / LOG_NAME).write_bytes((header + text).encode())


def _log_failure(out: Path, trace: str) -> None:
    """The batch's own failure for one submission, in full, at the end of its grader.log: for
    the instructor (the student's row says only that the grader failed)."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / LOG_NAME).open("a") as log:
        log.write("\nthe batch failed on this submission:\n" + inert.text(trace))


def _grade_in_child(
    path: Path,
    out: Path,
    settings: Settings,
    slot: int,
    jobs: int,
    test_files: list,
    steps: Steps,
) -> dict:
    """steps: what the child says it runs now (over a pipe of its own), for the progress bar."""
    read_end, write_end = os.pipe()
    command = [
        sys.executable,
        "-m",
        "mnist_grader",
        "grade-one",
        str(path),
        "--out",
        str(out),
        "--slot",
        str(slot),
        "--progress-fd",
        str(write_end),
        *settings_arguments(settings),
    ]
    env = {**_kernel_threads(jobs), "PYTHONPATH": str(PACKAGE_ROOT)}
    results_file = out / "results.json"
    results_file.unlink(missing_ok=True)
    started = time.monotonic()
    with os.fdopen(read_end) as pipe:
        try:
            child = subprocess.Popen(
                command,
                env=env,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(write_end,),
            )
        finally:
            os.close(write_end)  # the child's copy is the only one: its end is the pipe's end
        follower = threading.Thread(target=steps.follow, args=(out.name, pipe), daemon=True)
        follower.start()
        try:
            _, stderr = child.communicate(timeout=settings.total_seconds + CHILD_GRACE_SECONDS)
            problem = f"the grader stopped with exit code {child.returncode}"
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            _, stderr = child.communicate()
            problem = "grading took longer than its time limit"
        finally:
            if sandbox.is_root():
                sandbox.sweep(sandbox.slot_uid(slot))
            follower.join(timeout=5)
    _write_log(out, command, child.returncode, time.monotonic() - started, stderr or b"")
    try:
        return results.read_results(results_file)
    except (OSError, ValueError, KeyError):  # the details are in grader.log, not for students
        return _failure_results(path, test_files, problem)


def kernel_thread_count(jobs: int) -> int | None:
    """TensorFlow's threads in each kernel, or None for its own choice (a thread per CPU).

    One per kernel when kernels run side by side: they would spin against each other. Alone,
    as many as the CPU quota allows (on Gradescope, a container's quota, while TensorFlow sees
    every CPU of the host): threads beyond it wait for the quota and cost CPU time of their
    own (make bench: tests/bench_quota.py)."""
    if jobs > 1:
        return 1
    quota = launcher.cpu_quota()
    if quota is not None and quota < len(os.sched_getaffinity(0)):
        return max(1, int(quota))
    return None


def _kernel_threads(jobs: int) -> dict:
    """The environment with the kernels' thread counts (an instructor's own settings kept)."""
    env = dict(os.environ)
    if (threads := kernel_thread_count(jobs)) is not None:
        for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
            env.setdefault(name, str(threads))
    return env


@contextlib.contextmanager
def _warm_kernels(settings: Settings, jobs: int, count: int, warm: bool):
    """Settings whose kernels are forks of one template for the batch (mnist_grader.zygote), or
    the same settings (cold kernels: a new Python each) for one submission, with warm=False, or
    when the template cannot start (said on screen; grading goes on cold)."""
    fontcache.prepare()  # once here, not by every grading child at once the first time
    if not warm or count < 2:
        yield settings
        return
    from . import zygote

    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(
            tempfile.TemporaryDirectory(prefix="mnist-template-", dir=sandbox.work_root())
        )
        try:
            socket_path = stack.enter_context(zygote.template(Path(folder), _kernel_threads(jobs)))
        except (OSError, RuntimeError) as problem:
            print(f"note: cold kernels for this batch ({problem})", file=sys.stderr)
            socket_path = None
        yield replace(settings, kernel_template=str(socket_path)) if socket_path else settings


def _failure_results(path: Path, test_files: list, problem: str) -> dict:
    reason = could_not_grade(problem, graders_fault=True)
    report = Report(
        path.name, Status.GRADER_ERROR, checks.zero_results(test_files, reason), [reason]
    )
    return results.results_json(report)


def grade_batch(
    target: Path,
    out: Path,
    settings: Settings,
    jobs: int = 1,
    progress: bool = True,
    exports: bool = True,
    warm: bool = True,
    class_report: bool = True,
) -> list[dict]:
    """Grade every submission in `target` into `out`; returns the gradebook rows, in file order.

    exports=False: `target` is one student's upload, graded as such even if it looks like a
    Gradescope export (a zip a student made could). warm=False: every kernel a new Python
    (as for one submission) rather than a fork of the batch's template. class_report=False:
    no report.html (Gradescope's one submission, whose `out` is thrown away).
    """
    with tempfile.TemporaryDirectory(prefix="mnist-data-", dir=sandbox.work_root()) as cache:
        if not readable_in_place(settings.data_file) or _private(settings.data_file):
            data = make_data_cache(settings.data_file, Path(cache) / "data", settings.checks_dir)
            settings = replace(settings, data_file=data)
        return _grade_all(target, out, settings, jobs, progress, exports, warm, class_report)


def _private(path: Path) -> bool:
    """Whether `path` is in a folder grading makes root's alone (PRIVATE_FOLDERS)."""
    return any(
        path.resolve().is_relative_to((PACKAGE_ROOT / name).resolve()) for name in PRIVATE_FOLDERS
    )


def _stage(paths: list[Path], staging: Path) -> list[Path]:
    """Copies of the submissions in a folder of root's, under their own names, to grade from.

    The grading child's command line (which any process can read in /proc) then names a file no
    sandboxed kernel can open, rather than the instructor's folder of everyone's notebooks. A
    link is copied as a link: grading it says it is one.
    """
    staged = []
    for number, path in enumerate(paths):
        folder = staging / str(number)
        folder.mkdir()
        try:
            copy = Path(shutil.copy2(path, folder / path.name, follow_symlinks=False))
        except OSError:  # a folder or a device under a notebook's name: grading says so
            copy = folder / path.name
            copy.symlink_to(path)
        staged.append(copy)
    return staged


def _grade_each(
    paths, names, out, settings: Settings, slots, test_files, progress: bool, extras=None
):
    """Grade each path into out/<name>/results.json, len(slots) at a time; name -> results.

    extras: name -> what to add to that results.json's extra_data (who submitted it).
    """
    from tqdm import tqdm

    extras = extras or {}

    free: Queue = Queue()
    for slot in slots:
        free.put(slot)

    steps = Steps()

    def grade(path: Path, name: str) -> dict:
        slot = free.get()
        try:
            data = _grade_in_child(path, out / name, settings, slot, len(slots), test_files, steps)
        except Exception as error:  # one submission's failure is one row, never a lost batch
            data = _failure_results(path, test_files, f"the grader failed ({type(error).__name__})")
            _log_failure(out / name, traceback.format_exc())
        finally:
            free.put(slot)
        data["extra_data"].update(extras.get(name, {}))
        results.write_json(data, out / name / "results.json")
        return data

    graded: dict[str, dict] = {}
    if progress and paths:
        print(_time_note(len(paths), len(slots), settings), file=sys.stderr)
    with (
        ThreadPoolExecutor(max_workers=len(slots)) as pool,
        # smoothing=0: the estimate is the average so far; submissions finish in bursts (two
        # at once, or one that waits out its time limits), which a moving average overreacts to
        tqdm(
            total=len(paths),
            desc=BAR_TITLE,
            unit="notebook",
            smoothing=0,
            disable=not progress,
        ) as bar,
    ):
        futures = {
            pool.submit(grade, path, name): name for path, name in zip(paths, names, strict=True)
        }
        pending, shown = set(futures), ""
        while pending:
            done, pending = wait(pending, timeout=BAR_TICK_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                graded[futures[future]] = future.result()
                bar.update()
            waiting = steps.waiting()
            if waiting or shown:  # its countdown, redrawn each tick while the bar stands
                # first on the line: a terminal too narrow for it all cuts the end, not the note
                bar.set_description(f"{BAR_TITLE} ({waiting})" if waiting else BAR_TITLE)
                shown = waiting
    return graded


def sandbox_problem(settings: Settings, uid: int) -> str | None:
    """Why no kernel could start as `uid` here (see sandbox.unreachable), checked once before
    the first submission rather than discovered as a kernel that never answers."""
    needs = sandbox.kernel_needs(settings.data_file)
    return sandbox.unreachable(uid, needs) or sandbox.cannot_start_interpreter(uid)


def _not_gradable(paths, names, out, test_files, problem: str) -> dict[str, dict]:
    """Every submission's results.json says why the grader could not grade it."""
    print(f"mnist_grader: cannot grade: {inert.name(problem)}", file=sys.stderr)
    graded = {}
    for path, name in zip(paths, names, strict=True):
        graded[name] = _failure_results(path, test_files, problem)
        results.write_json(graded[name], out / name / "results.json")
    return graded


def _time_note(count: int, jobs: int, settings: Settings) -> str:
    return (
        f"Grading {count} submission(s), {jobs} at a time; the bar's estimate is the average "
        f"so far. A notebook that hangs waits out --cell-seconds {settings.cell_seconds} per "
        f"cell, up to --total-seconds {settings.total_seconds}: lower them to shorten the wait."
    )


@dataclass
class _Submission:
    """One row of the gradebook: a file to grade, or one with nothing to grade (an export
    entry without a notebook, a file refused unread)."""

    name: str  # its folder under OUT (output_folders)
    path: Path | None
    label: str = ""  # what the gradebook's file column says when nothing is graded
    extra: dict = field(default_factory=dict)  # added to its results.json's extra_data
    status: str = ""  # when path is None: why there is no grade
    reason: str = ""


def _submissions(target: Path, workdir: Path, exports: bool) -> tuple[list[_Submission], list[str]]:
    """What to grade in `target`, with who submitted it when it is a Gradescope export; and
    notes about the export as a whole."""
    if not (exports and gradescope_export.is_export(target)):
        paths = find_submissions(target)
        named = zip(output_names(paths), paths, strict=True)
        return [_refused_unread(_Submission(name, path, path.name)) for name, path in named], []
    entries, notes = gradescope_export.open_export(target, workdir)
    found = []
    folders = output_folders([entry.name for entry in entries])
    for folder, entry in zip(folders, entries, strict=True):
        extra = {
            "submitters": [inert.strings(asdict(person)) for person in entry.submitters],
            "note": inert.name(entry.note),
        }
        if entry.notebook is not None:
            extra["submission"] = inert.name(f"{entry.name}/{entry.notebook.name}")
        submission = _Submission(
            folder, entry.notebook, entry.name, extra, entry.status, entry.reason
        )
        found.append(_refused_unread(submission))
    return found, notes


def _refused_unread(submission: _Submission) -> _Submission:
    """The submission, with nothing to grade if its file would be refused unread (too large,
    empty, a link, a folder): a 2 GB file, sparse or not, is never copied to be refused."""
    if submission.path is not None:
        problem = notebook.refused_unread(submission.path)
        if problem:
            submission.label = submission.extra.get("submission", submission.path.name)
            submission.path, submission.status, submission.reason = (
                None,
                Status.UNREADABLE,
                problem,
            )
    return submission


def _ungraded_results(submission: _Submission, test_files: list) -> dict:
    """results.json for a submission with nothing to grade (no notebook, no folder, a file
    refused unread)."""
    reason = could_not_grade(submission.reason)
    report = Report(
        submission.label or submission.name,
        submission.status,
        checks.zero_results(test_files, reason),
        [reason],
    )
    data = results.results_json(report)
    data["extra_data"].update(submission.extra)
    return data


def _grade_all(
    target: Path,
    out: Path,
    settings: Settings,
    jobs: int,
    progress: bool,
    exports: bool,
    warm: bool = True,
    class_report: bool = True,
):
    out.mkdir(parents=True, exist_ok=True)
    private = private_folders(settings, out)
    test_files = checks.load_test_files(settings.checks_dir / "tests")  # before any kernel runs
    question_names = [test_file.name for test_file in test_files]
    with (
        sandbox.protected(private),
        tempfile.TemporaryDirectory(prefix="mnist-export-", dir=sandbox.work_root()) as unpacked,
        sandbox.hidden(target if target.is_dir() else None),
    ):
        submissions, notes = _submissions(target, Path(unpacked), exports)
        for note in notes:
            print(f"note: {inert.name(note)}", file=sys.stderr)
        to_grade = [s for s in submissions if s.path is not None]
        with (
            sandbox.lease_slots(jobs) as leased,
            tempfile.TemporaryDirectory(prefix="mnist-staged-", dir=sandbox.work_root()) as staging,
            _warm_kernels(settings, jobs, len(to_grade), warm) as settings,
        ):
            staged = _stage([s.path for s in to_grade], Path(staging))
            names = [s.name for s in to_grade]
            extras = {s.name: s.extra for s in to_grade}
            problem = sandbox_problem(settings, sandbox.slot_uid(leased[0]))
            if problem:
                graded = _not_gradable(staged, names, out, test_files, problem)
            else:
                graded = _grade_each(
                    staged, names, out, settings, leased, test_files, progress, extras
                )
    for submission in submissions:
        if submission.path is None:
            graded[submission.name] = _ungraded_results(submission, test_files)
            results.write_json(graded[submission.name], out / submission.name / "results.json")
    export = any("submitters" in s.extra for s in submissions)
    rows = [
        results.gradebook_row(graded[s.name], question_names, identity_columns=export)
        for s in submissions
    ]
    results.write_gradebook(rows, question_names, out / results.GRADEBOOK, export)
    if export:
        results.write_score_uploads(graded.values(), out)
    if len(rows) > 1:  # a distribution of one is no use, and loading matplotlib is not free
        maxima = results.question_scores(next(iter(graded.values())), "max_score")
        maxima["total"] = sum(maxima.values())
        results.plot_distribution(rows, question_names, maxima, out / results.DISTRIBUTION_PLOT)
    if rows and class_report:
        from . import report

        report.write(out, notes=notes, folders=[s.name for s in submissions])
    return rows
