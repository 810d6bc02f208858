"""`make bench`: the project's grader against plain `otter run`, measured in one invocation.

1. The reference solution graded RUNS times each, alternating: by the project's grader through
   the Gradescope zip's run_autograder, and by `otter run` with otter's own autograder zip
   (otter generate, same checks and support file), both with MNIST_EPOCHS=1. Median wall time
   and peak memory of the whole process tree (psutil, sampled every 50 ms), and their ratios.
2. A batch of 20 bank submissions graded with 1 and with 2 workers: submissions per minute.
3. The student's own run of the solution notebook (5 epochs, all 60000 images): test accuracy.
Targets (issue "Fast and lean grading"): at most half of otter run's time, peak <= 1.0 GB,
100 submissions in <= 5 minutes on 2 cores, student accuracy >= 97.5 %.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import psutil

from mnist_grader import CHECKS_DIR, PROJECT_ROOT, SOLUTIONS_DIR, assign, package
from tests import bank

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
FULL_SCORE = sum(bank.FULL_MARKS.values())
BATCH = 20
SAMPLE_SECONDS = 0.05
OTTER = str(Path(sys.executable).with_name("otter"))
SOLUTION = SOLUTIONS_DIR / "mnist_first_steps.ipynb"


def measure(command: list[str], env: dict, cwd: Path | None = None) -> tuple[float, float]:
    """(wall seconds, peak MB of the process tree's summed RSS) of one command."""
    started = time.monotonic()
    child = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    root, peak = psutil.Process(child.pid), 0
    while child.poll() is None:
        total = 0
        try:
            for proc in [root, *root.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(SAMPLE_SECONDS)
    if child.returncode != 0:
        raise RuntimeError(f"{command[:3]} exited with {child.returncode}")
    return time.monotonic() - started, peak / 2**20


def gradescope_tree(work: Path, data_file: Path) -> Path:
    root = work / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "results").mkdir()
    zip_path = package.build_zip(data_file, target=work / "autograder.zip")
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(root / "source")
    (root / "source" / "run_autograder").chmod(0o755)
    shutil.copy(SOLUTION, root / "submission" / SOLUTION.name)
    return root


def otter_zip(work: Path) -> Path:
    """otter's own autograder zip for the same checks and support file (otter generate)."""
    folder, target = work / "otter", work / "otter-autograder.zip"
    shutil.copytree(CHECKS_DIR, folder)
    subprocess.run(
        [
            OTTER,
            "generate",
            "-t",
            "tests",
            "-o",
            str(target),
            "--no-requirements",
            "mnist_exercise.py",
        ],
        cwd=folder,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return target


def student_accuracy(data_file: Path) -> float:
    """Run the solution notebook as a student does (nbclient, default settings)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(SOLUTION, as_version=4)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(CHECKS_DIR / "mnist_exercise.py", tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MNIST_")}
        env["MNIST_NPZ"] = str(data_file)
        old = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
        try:
            NotebookClient(
                nb, timeout=600, resources={"metadata": {"path": tmp}}, allow_errors=True
            ).execute()
        finally:
            os.environ.clear()
            os.environ.update(old)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines():
                if line.startswith("test accuracy:"):
                    return float(line.split(":")[1])
    raise RuntimeError("the notebook printed no test accuracy")


def main() -> None:
    data_file = Path(os.environ.get("MNIST_NPZ", PROJECT_ROOT.parent / "shared/datasets/mnist.npz"))
    assign.run_otter_assign()
    env = {
        **os.environ,
        "MNIST_NPZ": str(data_file),
        "MNIST_EPOCHS": "1",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GB, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory(prefix="mnist-bench-") as tmp:
        work = Path(tmp)
        tree = gradescope_tree(work, data_file)
        otter_archive = otter_zip(work)
        ours_env = {**env, "AUTOGRADER_ROOT": str(tree), "AUTOGRADER_PYTHON": sys.executable}
        ours_env.pop("MNIST_NPZ")  # the zip carries its own data
        ours, theirs = [], []
        for run in range(RUNS):
            ours.append(measure([str(tree / "source" / "run_autograder")], ours_env))
            graded = json.loads((tree / "results" / "results.json").read_text())
            if graded["score"] != FULL_SCORE:  # a fast wrong grade is no measurement
                raise RuntimeError(
                    f"the grader gave the reference {graded['score']}: {graded['output']}"
                )
            out = work / f"otter-out-{run}"
            out.mkdir()
            theirs.append(
                measure(
                    [OTTER, "run", "-a", str(otter_archive), "-o", str(out), str(SOLUTION)], env
                )
            )
            otter_results = json.loads((out / "results.json").read_text())
            otter_score = sum(t.get("score", 0) for t in otter_results.get("tests", []))
            if otter_score != FULL_SCORE:
                print(f"  (otter run gave the reference {otter_score})")
            print(
                f"  run {run + 1}/{RUNS}: ours {ours[-1][0]:.1f} s {ours[-1][1]:.0f} MB, "
                f"otter run {theirs[-1][0]:.1f} s {theirs[-1][1]:.0f} MB",
                flush=True,
            )
        ours_t, ours_m = (statistics.median(x) for x in zip(*ours, strict=True))
        theirs_t, theirs_m = (statistics.median(x) for x in zip(*theirs, strict=True))

        folder = work / "batch"
        bank.build(work / "bank")
        folder.mkdir()
        # ordinary submissions, right and wrong (the hostile ones wait out time limits on purpose)
        sources = [work / "bank" / f"{case.name}.ipynb" for case in bank.CASES]
        for i in range(BATCH):
            shutil.copy(
                sources[i % len(sources)], folder / f"{i:02d}_{sources[i % len(sources)].name}"
            )
        rates = {}
        for jobs in (1, 2, 3):
            seconds, peak = measure(
                [
                    sys.executable,
                    "-m",
                    "mnist_grader",
                    "grade",
                    str(folder),
                    "--out",
                    str(work / f"grades-{jobs}"),
                    "--jobs",
                    str(jobs),
                ],
                env,
            )
            rates[jobs] = (BATCH / seconds * 60, peak)
            gradebook = (work / f"grades-{jobs}" / "gradebook.csv").read_text().splitlines()
            if len(gradebook) != BATCH + 1 or "grader error" in "".join(gradebook):
                raise RuntimeError(f"batch with {jobs} worker(s) did not grade every submission")
    accuracy = student_accuracy(data_file)

    print("\nreference solution, median of", RUNS, "runs")
    print(f"  project grader (zip run_autograder): {ours_t:5.1f} s  {ours_m:5.0f} MB")
    print(f"  otter run:                           {theirs_t:5.1f} s  {theirs_m:5.0f} MB")
    print(f"  ratio ours/otter: time {ours_t / theirs_t:.2f}  memory {ours_m / theirs_m:.2f}")
    for jobs, (rate, peak) in rates.items():
        print(
            f"batch of {BATCH}, {jobs} worker(s): {rate:.1f} submissions/min, peak {peak:.0f} MB"
            f" -> 100 submissions in {100 / rate:.1f} min"
        )
    print(f"student's own training (5 epochs, 60000 images): test accuracy {accuracy:.4f}")
    targets = {
        "time <= half of otter run": ours_t <= theirs_t / 2,
        "peak <= 1.0 GB": ours_m <= 1024,
        "100 submissions <= 5 min (2 cores, best worker count)": 100
        / max(rate for rate, _ in rates.values())
        <= 5,
        "student accuracy >= 97.5 %": accuracy >= 0.975,
    }
    for name, met in targets.items():
        print(f"  [{'met' if met else 'NOT met'}] {name}")


if __name__ == "__main__":
    main()
