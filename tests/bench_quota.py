"""`make bench`, a part of its own (issue 21): TensorFlow's threads under a CPU quota.

Docker limits a container's CPU with a quota (`--cpus`), which is how Gradescope gives a
submission half a CPU or one, while the container still sees every CPU of the host, and
TensorFlow starts a thread per CPU it sees. The grader gives a kernel graded alone as many
threads as the quota allows (mnist_grader.batch.kernel_thread_count, which reads the quota with
mnist_grader.launcher.cpu_quota). Measured here: the kernel's own work (training 1 epoch on 20000
images and predicting the test set, as in the floor of the cold section) in a CPU group with
Gradescope's default quota of half a CPU, on every CPU of this machine (not pinned), with
TensorFlow's own thread count and with the grader's, alternating. Writes its section of
docs/performance.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from mnist_grader import CHECKS_DIR, PROJECT_ROOT, fontcache
from mnist_grader.batch import PACKAGE_ROOT
from tests import gradescope_like as gs
from tests.bench import load, write_section

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
QUOTA_CPUS = 0.5  # Gradescope's default
GROUP = f"mnist-bench-quota-{os.getpid()}"

WORK = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from mnist_grader import batch
threads = batch.kernel_thread_count(1)  # what the grader would give this kernel, here
import keras, mnist_exercise
(x_train, y_train), (x_test, _) = mnist_exercise.load_dataset()
x_train = mnist_exercise.scale_images(x_train[:20000]); y_train = y_train[:20000]
x_test = mnist_exercise.scale_images(x_test)
keras.utils.set_random_seed(42)
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
started_cpu, started = cpu(), time.monotonic()
model = keras.Sequential([keras.Input(shape=(28, 28)), keras.layers.Flatten(),
    keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=1, verbose=0)
model.predict(x_test, verbose=0)
print(json.dumps({"cpu": cpu() - started_cpu, "wall": time.monotonic() - started,
                  "grader_threads": threads}))
"""


@contextlib.contextmanager
def quota_group(cpus: float = QUOTA_CPUS, name: str = GROUP):
    """A CPU group with a quota of `cpus` under this process's own (tests.gradescope_like's, as
    for Gradescope's settings); None where none can be made (tests/test_kernel_threads.py uses
    it too)."""
    if os.geteuid() != 0:
        yield None
        return
    group = gs.make_cgroup(name, None, cpus)
    try:
        yield group if group.cpu is not None else None
    finally:
        group.remove()


def run_in(group: gs.Cgroup, env: dict) -> dict:
    """The work in a fresh Python that joins `group` before it starts."""
    with tempfile.TemporaryDirectory() as home:
        if (font_list := fontcache.prepare()) is not None:
            (Path(home) / font_list.name).write_bytes(font_list.read_bytes())
        output = subprocess.run(
            group.joined([sys.executable, "-c", WORK, str(PACKAGE_ROOT)]),
            env={**env, "MPLCONFIGDIR": home, "PYTHONPATH": str(CHECKS_DIR)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    data_file = Path(os.environ.get("MNIST_NPZ", PROJECT_ROOT.parent / "shared/datasets/mnist.npz"))
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "MNIST_NPZ": str(data_file),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "MPLBACKEND": "agg",
    }
    started_load = load("when it started")
    runs = {"TensorFlow's own": [], "the grader's": []}
    with quota_group() as group:
        if group is None:
            print("bench_quota: no CPU group can be made here (root and a cpu controller needed)")
            return
        for _ in range(RUNS):
            runs["TensorFlow's own"].append(run_in(group, base))
            threads = runs["TensorFlow's own"][-1]["grader_threads"]
            if threads is None:
                raise RuntimeError("the grader saw no quota inside the group")
            names = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")
            counted = {**base, **dict.fromkeys(names, str(threads))}
            runs["the grader's"].append(run_in(group, counted))
    cpus = len(os.sched_getaffinity(0))
    lines = [
        f"Training 1 epoch on 20000 images and predicting the test set in a fresh Python, in a "
        f"CPU group with a quota of {QUOTA_CPUS} CPU (Gradescope's default), on this machine's "
        f"{cpus} CPUs (not pinned: TensorFlow sees {cpus}), median of {RUNS} runs per setting, "
        f"alternating. The grader's count (mnist_grader.batch.kernel_thread_count) inside the "
        f"group: {threads}. CPU seconds: the process's user + system time. The machine is "
        f"shared: {started_load}.",
        "",
        "| TensorFlow's threads | wall s | CPU s |",
        "|---|---:|---:|",
    ]
    for label, found in runs.items():
        wall = statistics.median(r["wall"] for r in found)
        cpu = statistics.median(r["cpu"] for r in found)
        lines.append(f"| {label} | {wall:.2f} | {cpu:.2f} |")
    text = "\n".join(lines) + "\n"
    write_section("quota", "TensorFlow's threads under a CPU quota (issue 21)", text)
    print(text)


if __name__ == "__main__":
    main()
