"""`make bench`, third part (issue 13): how little training still judges the student, and
batches with warm kernels (forks of one template, mnist_grader.zygote) against cold ones. One
submission against `otter run`, and where its CPU goes, are tests/bench_cold.py's.
Writes its section of docs/performance.md (between its markers) from what this run measured;
`python -m tests.bench_warm --report-only` writes it again from the last run's figures.

CPU seconds are user + system time of the whole process tree (tests/process_tree.py: every
descendant reaped, by its parent or by the bench as their subreaper), beside wall time; memory is
the process tree's summed PSS (shared pages split between the processes sharing them, so forks
of one template are not counted once per fork).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import psutil

from mnist_grader import MASTER_DIR, PROJECT_ROOT, engine
from tests import bank, process_tree

BEGIN, END = "<!-- bench_warm: begin -->", "<!-- bench_warm: end -->"
BATCH = 20
FULL_SCORE = sum(bank.FULL_MARKS.values())
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
    """Wall seconds, CPU seconds (the whole tree) and peak summed PSS (MB)."""
    measured = process_tree.measure(command, env, cwd)
    if measured.returncode != 0:
        raise RuntimeError(f"{command[:4]} exited with {measured.returncode}")
    return {"wall": measured.wall, "cpu": measured.cpu, "peak_mb": measured.peak_mb}


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


def report(machine, margins, batch) -> str:
    lines = [
        "## Training work and warm kernels (issue 13)",
        "",
        f"Written by `make bench` (tests/bench_warm.py) on {machine}. The machine may be shared",
        "with other work while it runs: compare figures within this run, not across runs.",
        "CPU seconds: user + system of the whole process tree (every descendant reaped); memory:",
        "peak of the process tree's summed PSS (shared pages split among their sharers). One",
        "submission against otter run, and where its CPU goes: the section above (bench_cold).",
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
        text = report(raw["machine"], raw["margins"], batch)
        write_section(text)
        print(text)
        return
    margins = training_margins()
    with tempfile.TemporaryDirectory(prefix="mnist-bench-warm-") as tmp:
        batch = batches(Path(tmp), env)
    RAW.parent.mkdir(exist_ok=True)
    raw = {
        "machine": machine,
        "margins": margins,
        "batch": [(jobs, kind, figures) for (jobs, kind), figures in batch.items()],
    }
    RAW.write_text(json.dumps(raw, indent=1))
    text = report(machine, margins, batch)
    write_section(text)
    print(text)


if __name__ == "__main__":
    main()
