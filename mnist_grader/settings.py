"""The grader's settings, each with what it means and its unit, and the statuses a submission can
end with. No heavy imports: the command line reads this to build `--help`, and the batch parent
to pass settings on to each grading child.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from pathlib import Path


class Status(str, enum.Enum):
    """How a submission's grading ended (results.json's extra_data.status, the gradebook's
    `status`). A str, so it is written to JSON and CSV as its text."""

    GRADED = "graded"  # every cell ran (or was stopped and reported) and every check ran
    UNREADABLE = "unreadable"  # not a notebook the grader can run: 0, with the reason
    KERNEL_DIED = "kernel died"  # the kernel kept dying after its restarts: the rest not run
    OUT_OF_TIME = "out of time"  # the submission used its total time: the rest not run
    GRADER_ERROR = "grader error"  # the grader itself failed: 0, the instructor's to look at
    # checking the submission took the grader past --grader-memory-mb: what needed it scores 0
    GRADING_OUT_OF_MEMORY = "grading out of memory"
    NO_NOTEBOOK = "no notebook"  # a Gradescope export's folder with no notebook in it
    MISSING_FOLDER = "missing folder"  # a student the export's metadata names, with no folder

    def __str__(self) -> str:
        return self.value


def _setting(default, unit: str, meaning: str):
    return field(default=default, metadata={"unit": unit, "help": meaning})


@dataclass
class Settings:
    """Limits and training for grading; every int setting is a flag of `grade` and `grade-one`
    (`--cell-seconds 30`), whose --help shows the meaning and unit given here."""

    checks_dir: Path = field(
        metadata={"help": "otter's autograder build: tests/q*.py (public + hidden checks) and "
                  "mnist_exercise.py"}
    )  # fmt: skip
    data_file: Path = field(
        metadata={"help": "the dataset: mnist.npz, a folder of IDX files, or of .npy files"}
    )
    cell_seconds: int = _setting(
        300,
        "seconds",
        "how long one notebook cell may run (training included); a cell over it is "
        "interrupted, reported, and the cells after it still run",
    )
    check_seconds: int = _setting(
        60,
        "seconds",
        "how long one call from a check into the student's code may run; a call over it fails "
        "that check, and the function is not called again",
    )
    total_seconds: int = _setting(
        420,
        "seconds",
        "everything for one submission (cells and checks); past it grading stops with status "
        "'out of time' and what did not run scores 0. Keep it inside Gradescope's timeout",
    )
    memory_mb: int = _setting(
        3072,
        "MB",
        "the kernel's address space (TensorFlow alone reserves a large part of it); an "
        "allocation past it raises MemoryError in the student's code",
    )
    model_seconds: int = _setting(
        120,
        "seconds",
        "how long the grader's Keras evaluator may take to rebuild and run a trained model "
        "that numpy does not compute (a CNN, say) for the accuracy check; past it that check "
        "fails and says so",
    )
    grader_memory_mb: int = _setting(
        1024,
        "MB",
        "how much memory each submission's grading process (the grader's side, not the "
        "student's kernel) may add to what it holds when grading starts, to read what the "
        "kernel returns and recompute the model; a check that needs more fails, the "
        "submission's status is 'grading out of memory', and the batch goes on",
    )
    epochs: int = _setting(
        1,
        "epochs",
        "training while grading (the notebook's MNIST_EPOCHS): enough for the hidden accuracy "
        "check's bar, far less than the 5 a student runs",
    )
    train_images: int = _setting(
        20000,
        "images",
        "how many training images the notebook trains on while grading (MNIST_TRAIN_IMAGES)",
    )
    debug: bool = field(
        default=False,
        metadata={
            "help": "keep a copy of each submission's grading folder (the kernelspec, the "
            "arguments the checks sent, the answers the kernel returned; the kernel's own "
            "folder is a private tmpfs that ends with it where mount namespaces are allowed) "
            "and name it in OUT/<submission>/grader.log"
        },
    )
    slot: int = field(default=0, metadata={"internal": True})  # the sandbox uid's job slot
    # a batch's warm-kernel template socket (mnist_grader.zygote); "" for a cold kernel
    kernel_template: str = field(default="", metadata={"internal": True})

    @property
    def cpu_seconds(self) -> int:
        """The kernel's CPU-time limit over all its threads; wall time is bounded separately."""
        return self.total_seconds * 4


def flag_settings() -> list:
    """The settings given as command-line flags: the ints and bools with a help text."""
    return [f for f in fields(Settings) if f.type in ("int", "bool") and "help" in f.metadata]


def flag_help(setting) -> str:
    if setting.type == "bool":
        return setting.metadata["help"]
    return f"{setting.metadata['help']} (default: {setting.default} {setting.metadata['unit']})"
