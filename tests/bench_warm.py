"""`make bench`, second part (issue 13): where one graded submission's CPU goes, how little
training still judges the student, one submission against `otter run` doing the same training,
and batches with warm kernels (forks of one template, mnist_grader.zygote) against cold ones.
Writes its section of docs/performance.md (between its markers) from what this run measured;
`python -m tests.bench_warm --report-only` writes it again from the last run's figures.

CPU seconds are user + system time of a process and every descendant it waited for
(os.wait4), beside wall time; memory is the process tree's summed PSS (shared pages split
between the processes sharing them, so forks of one template are not counted once per fork).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from mnist_grader import CHECKS_DIR, MASTER_DIR, PROJECT_ROOT, engine
from tests import bank
from tests.bench import OTTER, SOLUTION, gradescope_tree, otter_zip

BEGIN, END = "<!-- bench_warm: begin -->", "<!-- bench_warm: end -->"
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
BATCH = 20
FULL_SCORE = sum(bank.FULL_MARKS.values())
MEMORY_SAMPLE_SECONDS = 0.2
KERAS_BATCH_SIZE = 32  # model.fit's default, which the notebook's training cell uses
RAW = PROJECT_ROOT / "build" / "bench_warm.json"  # this run's figures, for --report-only
FASHION_DATA = Path("/usr/share/datasets/fashion-mnist")
MARGIN_SEEDS = (42, 1, 2, 3, 4)
# (epochs, train images, batch size) candidates for the grader's training; the first is today's
TRAINING_CHOICES = (
    (1, 20000, 32),
    (1, 10000, 32),
    (1, 5000, 32),
    (1, 20000, 64),
    (1, 20000, 128),
)


def cpu_seconds_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def reference_accuracies(arrays: dict, epochs: int, images: int, batch_size: int) -> list:
    """The reference model (the solution's build_model) trained as the grader's kernel would, once
    per seed: [(test accuracy, CPU seconds of the training)]."""
    import keras
    import numpy as np

    x_train = arrays["x_train"][:images].astype("float32") / 255.0
    x_test = arrays["x_test"].astype("float32") / 255.0
    found = []
    for seed in MARGIN_SEEDS:
        keras.utils.set_random_seed(seed)
        model = keras.Sequential(
            [
                keras.Input(shape=(28, 28)),
                keras.layers.Flatten(),
                keras.layers.Dense(128, activation="relu"),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        started = cpu_seconds_self()
        y_train = arrays["y_train"][:images]
        model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, verbose=0)
        spent = cpu_seconds_self() - started
        probs = model.predict(x_test, verbose=0, batch_size=1000)
        found.append((float(np.mean(np.argmax(probs, 1) == arrays["y_test"])), spent))
    return found


def training_margins() -> list[dict]:
    """Each training choice on both datasets: the reference's worst accuracy over the seeds, its
    margin over the hidden check's bar, and the training's median CPU seconds."""
    exercise = engine.exercise_module(MASTER_DIR)
    datasets = {
        "MNIST": (exercise.read_arrays(Path(os.environ["MNIST_NPZ"])), exercise.DATASETS["mnist"]),
        "Fashion-MNIST": (exercise.read_arrays(FASHION_DATA), exercise.DATASETS["fashion_mnist"]),
    }
    rows = []
    for epochs, images, batch_size in TRAINING_CHOICES:
        for title, (arrays, info) in datasets.items():
            runs = reference_accuracies(arrays, epochs, images, batch_size)
            worst = min(accuracy for accuracy, _ in runs)
            rows.append(
                {
                    "dataset": title,
                    "epochs": epochs,
                    "images": images,
                    "batch_size": batch_size,
                    "worst": worst,
                    "bar": info.min_accuracy,
                    "margin": worst - info.min_accuracy,
                    "cpu": statistics.median(cpu for _, cpu in runs),
                }
            )
            print(rows[-1], flush=True)
    return rows


def run(command: list[str], env: dict, cwd: Path | None = None) -> dict:
    """Wall seconds, CPU seconds (the whole tree, os.wait4) and peak summed PSS (MB)."""
    started = time.monotonic()
    child = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    root, peak = psutil.Process(child.pid), 0
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        total = 0
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            tree = []
        for proc in tree:
            try:
                total += proc.memory_full_info().pss
            except psutil.Error:
                pass
        peak = max(peak, total)
        time.sleep(MEMORY_SAMPLE_SECONDS)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{command[:4]} exited with {child.returncode}")
    return {
        "wall": time.monotonic() - started,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_mb": peak / 2**20,
    }


PHASES = r"""
import json, os, resource, sys, time
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
marks = [("interpreter start", cpu(), time.monotonic())]
def mark(name):
    marks.append((name, cpu(), time.monotonic()))
import numpy as np; mark("import numpy")
import keras; mark("import TensorFlow/Keras")
already = "matplotlib.pyplot" in sys.modules
import matplotlib.pyplot; mark("import matplotlib" + (" (Keras imported it)" if already else ""))
import ipykernel.kernelapp, ipykernel.ipkernel; mark("import ipykernel")
sys.path.insert(0, sys.argv[1])
import mnist_exercise
(x_train, y_train), (x_test, y_test) = mnist_exercise.load_dataset()
x_train = mnist_exercise.scale_images(x_train[:20000]); y_train = y_train[:20000]
x_test = mnist_exercise.scale_images(x_test); mark("load and scale the data")
keras.utils.set_random_seed(42)
model = keras.Sequential([keras.Input(shape=(28, 28)), keras.layers.Flatten(),
    keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=1, verbose=0); mark("train (1 epoch, 20000 images)")
probs = model.predict(x_test, verbose=0); mark("predict the test set")
print(json.dumps([(name, c, w) for name, c, w in marks]))
"""


def kernel_phases(data_file: Path) -> list[tuple[str, float, float]]:
    """What a cold kernel's work costs, phase by phase (CPU s, wall s), in a new Python as the
    kernel is; the first phase is the interpreter's own start."""
    env = {**os.environ, "MNIST_NPZ": str(data_file), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env["MPLBACKEND"] = "agg"
    with tempfile.TemporaryDirectory() as home:
        env["MPLCONFIGDIR"] = home  # empty, as a cold kernel's is
        started = time.monotonic()
        output = subprocess.run(
            [sys.executable, "-c", PHASES, str(CHECKS_DIR)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    marks = json.loads(output.strip().splitlines()[-1])
    phases, last_cpu, last_wall = [], 0.0, started
    for name, cpu, wall in marks:
        phases.append((name, cpu - last_cpu, wall - last_wall))
        last_cpu, last_wall = cpu, wall
    return phases


def single_submission(work: Path, data_file: Path, env: dict) -> dict:
    """The reference graded RUNS times each, alternating: the zip's run_autograder (one
    submission: a cold kernel, as on Gradescope) and `otter run`, both training 1 epoch on
    20000 images (MNIST_EPOCHS, MNIST_TRAIN_IMAGES, which the notebook's setup cell reads)."""
    tree = gradescope_tree(work, data_file)
    otter_archive = otter_zip(work)
    ours_env = {**env, "AUTOGRADER_ROOT": str(tree), "AUTOGRADER_PYTHON": sys.executable}
    ours_env.pop("MNIST_NPZ")  # the zip carries its own data
    ours, theirs = [], []
    for number in range(RUNS):
        ours.append(run([str(tree / "source" / "run_autograder")], ours_env))
        graded = json.loads((tree / "results" / "results.json").read_text())
        if graded["score"] != FULL_SCORE:
            raise RuntimeError(f"the grader gave the reference {graded['score']}")
        out = work / f"otter-out-{number}"
        out.mkdir()
        command = [OTTER, "run", "-a", str(otter_archive), "-o", str(out), str(SOLUTION)]
        theirs.append(run(command, env))
        print(f"  single run {number + 1}/{RUNS}: ours {ours[-1]}, otter {theirs[-1]}", flush=True)
    median = {
        who: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for who, runs in (("ours", ours), ("otter", theirs))
    }
    return median


def batches(work: Path, env: dict) -> dict:
    """BATCH ordinary bank submissions with 1, 2, 3 workers, warm and cold: (jobs, kind) ->
    run() figures plus submissions per minute."""
    bank.build(work / "bank")
    folder = work / "batch"
    folder.mkdir()
    sources = [work / "bank" / f"{case.name}.ipynb" for case in bank.CASES]
    for number in range(BATCH):
        source = sources[number % len(sources)]
        shutil.copy(source, folder / f"{number:02d}_{source.name}")
    found = {}
    for jobs in (1, 2, 3):
        for kind in ("warm", "cold"):
            out = work / f"grades-{jobs}-{kind}"
            command = [
                sys.executable,
                "-m",
                "mnist_grader",
                "grade",
                str(folder),
                "--out",
                str(out),
                "--jobs",
                str(jobs),
                *(["--cold-kernels"] if kind == "cold" else []),
            ]
            figures = run(command, env)
            rows = (out / "gradebook.csv").read_text().splitlines()
            if len(rows) != BATCH + 1 or "grader error" in "".join(rows):
                raise RuntimeError(f"{kind} batch with {jobs} worker(s) lost a submission")
            figures["per_minute"] = BATCH / figures["wall"] * 60
            found[(jobs, kind)] = figures
            print(f"  batch {jobs} worker(s), {kind}: {figures}", flush=True)
    return found


def write_section(text: str) -> None:
    from tests.bench import put_section

    put_section(BEGIN, END, text)


def report(machine, phases, margins, single, batch) -> str:
    lines = [
        "## Warm kernels, training work, like-for-like with otter run (issue 13)",
        "",
        f"Written by `make bench` (tests/bench_warm.py) on {machine}. The machine may be shared",
        "with other work while it runs: compare figures within this run, not across runs.",
        "CPU seconds: user + system of the process and its descendants (os.wait4); memory:",
        "peak of the process tree's summed PSS (shared pages split among their sharers).",
        "",
        "### Where one submission's CPU goes (a cold kernel's work, in a new Python)",
        "",
        "| phase | CPU s | wall s |",
        "|---|---:|---:|",
    ]
    for name, cpu, wall in phases:
        lines.append(f"| {name} | {cpu:.2f} | {wall:.2f} |")
    kernel_cpu = sum(cpu for _, cpu, _ in phases)
    training = sum(cpu for name, cpu, _ in phases if name.startswith("train"))
    fixed = sum(cpu for name, cpu, _ in phases if name.startswith(("interpreter", "import")))
    grading = single["ours"]["cpu"] - kernel_cpu
    lines += [
        f"| **kernel total** | {kernel_cpu:.2f} | |",
        f"| grading processes: one graded submission's {single['ours']['cpu']:.2f} CPU s "
        "(below) less the kernel total | " + f"{grading:.2f} | |",
        "",
        f"Interpreter start and imports, what a warm kernel no longer pays: {fixed:.2f} CPU s",
        f"of the kernel's {kernel_cpu:.2f}.",
        "",
        "### The grader's training: the reference's worst test accuracy over seeds "
        + ", ".join(map(str, MARGIN_SEEDS)),
        "",
        "| dataset | epochs | images | batch size | worst accuracy | bar | margin | "
        "training CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in margins:
        lines.append(
            f"| {row['dataset']} | {row['epochs']} | {row['images']} | {row['batch_size']} | "
            f"{row['worst']:.4f} | {row['bar']:.2f} | {row['margin'] * 100:+.1f} pts | "
            f"{row['cpu']:.2f} |"
        )
    grader = (engine.Settings.epochs, engine.Settings.train_images, KERAS_BATCH_SIZE)
    chosen = [r for r in margins if (r["epochs"], r["images"], r["batch_size"]) == grader]
    cheaper = [
        r
        for r in margins
        if r["dataset"] == "MNIST" and (r["epochs"], r["images"], r["batch_size"]) != grader
    ]
    chosen_mnist = next(r for r in chosen if r["dataset"] == "MNIST")
    lines += [
        "",
        f"The grader's choice (engine.Settings: `--epochs {grader[0]} --train-images "
        f"{grader[1]}`, Keras's default batch of {grader[2]}): margin "
        + ", ".join(f"{r['dataset']} {r['margin'] * 100:+.1f} pts" for r in chosen)
        + f". The cheaper choices above leave MNIST {min(r['margin'] for r in cheaper) * 100:+.1f}"
        f" to {max(r['margin'] for r in cheaper) * 100:+.1f} pts, to save at most "
        f"{chosen_mnist['cpu'] - min(r['cpu'] for r in cheaper):.2f} CPU s of training per "
        "submission.",
        "",
        f"### One submission, like for like (median of {RUNS}; both train 1 epoch on 20000 images)",
        "",
        "| | wall s | CPU s | peak MB |",
        "|---|---:|---:|---:|",
    ]
    for who, label in (("ours", "zip's run_autograder (cold kernel)"), ("otter", "otter run")):
        figures = single[who]
        lines.append(
            f"| {label} | {figures['wall']:.1f} | {figures['cpu']:.1f} | {figures['peak_mb']:.0f} |"
        )
    ratio = single["ours"]["wall"] / single["otter"]["wall"]
    lines += [
        f"| ratio ours/otter | {ratio:.2f} | "
        f"{single['ours']['cpu'] / single['otter']['cpu']:.2f} | "
        f"{single['ours']['peak_mb'] / single['otter']['peak_mb']:.2f} |",
        "",
        "One submission (Gradescope: one per container) starts one kernel, so it keeps the cold",
        "start: a template would import the same libraries in one more process. Of its "
        f"{single['ours']['cpu']:.1f} CPU s, the kernel's work is {kernel_cpu:.1f} (imports "
        f"{fixed:.1f}, training {training:.1f}) and the grading processes' {grading:.1f}.",
        "",
        f"### Batches of {BATCH} bank submissions",
        "",
        "| workers | kernels | submissions/min | wall s | CPU s | CPU s per submission | peak MB |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for (jobs, kind), figures in batch.items():
        lines.append(
            f"| {jobs} | {kind} | {figures['per_minute']:.1f} | {figures['wall']:.0f} | "
            f"{figures['cpu']:.0f} | {figures['cpu'] / BATCH:.1f} | {figures['peak_mb']:.0f} |"
        )
    best_warm = max(batch[(j, "warm")]["per_minute"] for j in (1, 2, 3))
    best_cold = max(batch[(j, "cold")]["per_minute"] for j in (1, 2, 3))
    targets = {
        "wall time of one submission <= 0.4 of otter run's": ratio <= 0.4,
        "batch throughput >= 2x the cold path (best worker count each)": best_warm >= 2 * best_cold,
        "peak memory of a 2-worker warm batch <= the cold one's": batch[(2, "warm")]["peak_mb"]
        <= batch[(2, "cold")]["peak_mb"],
    }
    lines += [
        "",
        f"Best throughput: warm {best_warm:.1f}/min, cold {best_cold:.1f}/min "
        f"({best_warm / best_cold:.2f}x).",
        "",
        "Targets:",
        "",
    ]
    lines += [f"- [{'met' if met else 'NOT met'}] {name}" for name, met in targets.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    data_file = Path(os.environ.get("MNIST_NPZ", PROJECT_ROOT.parent / "shared/datasets/mnist.npz"))
    os.environ["MNIST_NPZ"] = str(data_file)
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GB, Python {platform.python_version()}"
    )
    print(machine, flush=True)
    env = {
        **os.environ,
        "MNIST_EPOCHS": "1",
        "MNIST_TRAIN_IMAGES": "20000",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    if "--report-only" in sys.argv:  # the doc again from the last run's figures (no measuring)
        raw = json.loads(RAW.read_text())
        batch = {(jobs, kind): figures for jobs, kind, figures in raw["batch"]}
        text = report(raw["machine"], raw["phases"], raw["margins"], raw["single"], batch)
        write_section(text)
        print(text)
        return
    phases = kernel_phases(data_file)
    print(phases, flush=True)
    margins = training_margins()
    with tempfile.TemporaryDirectory(prefix="mnist-bench-warm-") as tmp:
        work = Path(tmp)
        single = single_submission(work, data_file, env)
        batch = batches(work, env)
    RAW.parent.mkdir(exist_ok=True)
    raw = {
        "machine": machine,
        "phases": phases,
        "margins": margins,
        "single": single,
        "batch": [(jobs, kind, figures) for (jobs, kind), figures in batch.items()],
    }
    RAW.write_text(json.dumps(raw, indent=1))
    text = report(machine, phases, margins, single, batch)
    write_section(text)
    print(text)


if __name__ == "__main__":
    main()
