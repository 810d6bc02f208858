"""Grading a file or a folder of submissions: one row per submission, always.

Each submission is graded in a child process (`python -m mnist_grader grade-one`), so that nothing
one submission does to the grading process can reach the next; `jobs` children run at once, each
with its own sandbox uid. A child that crashes or overruns still leaves a results.json: this
parent writes one saying so, with a score of 0.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, replace
from pathlib import Path
from queue import Queue

from . import checks, results, sandbox
from .engine import FIRST_SANDBOX_UID, Report, Settings, make_data_cache

SUBMISSION_SUFFIXES = (".ipynb", ".zip")
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
# What a sandboxed kernel must not read (it needs only .venv): checks, solutions, history.
PRIVATE_FOLDERS = ("autograder", "solutions", "tests", ".git", "build", "grades")


def find_submissions(target: Path) -> list[Path]:
    if target.is_dir():
        return sorted(
            p
            for p in target.iterdir()
            if p.suffix in SUBMISSION_SUFFIXES and not p.name.startswith(".")
        )
    return [target]


def output_names(paths: list[Path]) -> list[str]:
    """A folder name per submission: its file stem, made unique if two files share one."""
    names, seen = [], set()
    for path in paths:
        name, n = path.stem, 1
        while name in seen:
            n += 1
            name = f"{path.stem}-{n}"
        seen.add(name)
        names.append(name)
    return names


def settings_arguments(settings: Settings) -> list[str]:
    args = []
    for key, value in asdict(settings).items():
        if key != "slot":
            args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def _grade_in_child(
    path: Path, out: Path, settings: Settings, slot: int, jobs: int, test_files: list
) -> dict:
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
        *settings_arguments(settings),
    ]
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)}
    if jobs > 1:  # one TensorFlow thread per kernel: parallel kernels would spin against each other
        for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
            env.setdefault(name, "1")
    results_file = out / "results.json"
    results_file.unlink(missing_ok=True)
    child = subprocess.Popen(
        command, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _, stderr = child.communicate(timeout=settings.total_seconds + 60)
        problem = f"the grader stopped with exit code {child.returncode}"
        detail = stderr.decode(errors="replace").strip().splitlines()[-1:] if stderr else []
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        problem, detail = "grading took longer than its time limit", []
    finally:
        if sandbox.is_root():
            sandbox.sweep(FIRST_SANDBOX_UID + slot)
    try:
        return results.read_results(results_file)
    except (OSError, ValueError, KeyError):
        return _failure_results(
            path, test_files, problem + (f" ({detail[0][:200]})" if detail else "")
        )


def _failure_results(path: Path, test_files: list, problem: str) -> dict:
    reason = (
        f"Your submission could not be graded: {problem}. "
        "Please tell your instructor; this is the grader's fault, not yours."
    )
    report = Report(path.name, "grader error", checks.zero_results(test_files, reason), [reason])
    return results.results_json(report)


def grade_batch(
    target: Path, out: Path, settings: Settings, jobs: int = 1, progress: bool = True
) -> list[dict]:
    """Grade every submission in `target` into `out`; returns the gradebook rows, in file order."""
    with tempfile.TemporaryDirectory(prefix="mnist-data-", dir=sandbox.work_root()) as cache:
        data = make_data_cache(settings.data_file, Path(cache) / "data", settings.checks_dir)
        settings = replace(settings, data_file=data)
        return _grade_all(target, out, settings, jobs, progress)


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


def _grade_each(paths, names, out, settings: Settings, slots, test_files, progress: bool):
    """Grade each path into out/<name>/results.json, len(slots) at a time; name -> results."""
    from tqdm import tqdm

    free: Queue = Queue()
    for slot in slots:
        free.put(slot)

    def grade(path: Path, name: str) -> dict:
        slot = free.get()
        try:
            data = _grade_in_child(path, out / name, settings, slot, len(slots), test_files)
        except Exception as error:  # one submission's failure is one row, never a lost batch
            data = _failure_results(path, test_files, f"the grader failed ({type(error).__name__})")
        finally:
            free.put(slot)
        results.write_json(data, out / name / "results.json")
        return data

    graded: dict[str, dict] = {}
    with (
        ThreadPoolExecutor(max_workers=len(slots)) as pool,
        tqdm(total=len(paths), desc="grading", unit="notebook", disable=not progress) as bar,
    ):
        futures = {
            pool.submit(grade, path, name): name for path, name in zip(paths, names, strict=True)
        }
        for future in as_completed(futures):
            graded[futures[future]] = future.result()
            bar.update()
    return graded


def _grade_all(target: Path, out: Path, settings: Settings, jobs: int, progress: bool):
    paths = find_submissions(target)
    names = output_names(paths)
    out.mkdir(parents=True, exist_ok=True)
    private = [settings.checks_dir, out, *(PACKAGE_ROOT / name for name in PRIVATE_FOLDERS)]
    sandbox.protect(private)
    test_files = checks.load_test_files(settings.checks_dir / "tests")  # before any kernel runs
    question_names = [test_file.name for test_file in test_files]
    with (
        sandbox.lease_slots(jobs) as leased,
        sandbox.hidden(target if target.is_dir() else None),
        tempfile.TemporaryDirectory(prefix="mnist-staged-", dir=sandbox.work_root()) as staging,
    ):
        staged = _stage(paths, Path(staging))
        graded = _grade_each(staged, names, out, settings, leased, test_files, progress)
    rows = [results.gradebook_row(graded[name], question_names) for name in names]
    results.write_gradebook(rows, question_names, out / "gradebook.csv")
    if len(rows) > 1:  # a distribution of one is no use, and matplotlib costs 0.6 s to load
        maxima = {t["name"]: t["max_score"] for t in next(iter(graded.values()))["tests"]}
        maxima["total"] = sum(maxima.values())
        results.plot_distribution(rows, question_names, maxima, out / "score_distribution.png")
    return rows
