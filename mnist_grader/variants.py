"""Dataset variants: the same exercise on another dataset, made from the one MNIST master.

The master (autograder/master/) is written for MNIST. A variant is the short list of edits that
turns its text into the same exercise on another dataset: the support module's `DATASET` line
(everything else in the module follows from it: class names, data location, first test class,
accuracy bar) and the prose that names the data. `make assignment DATASET=fashion_mnist` applies
them to a copy of the master and runs otter assign on that copy, so the checks, the student
notebook, the solution and the rubric all follow. Every edit must match the master somewhere: an
edit the master no longer fits stops the build instead of leaving MNIST text in the variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import ASSIGNMENT_DIR, DIST_DIR, MASTER_DIR, PROJECT_ROOT, SOLUTIONS_DIR, ZIP_PATH

DEFAULT = "mnist"
RUBRIC = SOLUTIONS_DIR / "rubric.md"  # hand-written, so it lives in solutions/, not the master
BUILD_DIR = PROJECT_ROOT / "build"


def master_sources(master: Path) -> list[Path]:
    """The master's own files: not what Python or Jupyter leave beside them when an instructor
    imports the module or opens the notebook (__pycache__/, .ipynb_checkpoints/, dotfiles)."""
    return sorted(p for p in master.iterdir() if p.is_file() and not p.name.startswith("."))


@dataclass(frozen=True)
class Variant:
    name: str
    edits: tuple = ()  # (MNIST text, this variant's text), applied to master, module and rubric

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT

    @property
    def root(self) -> Path:
        """Where this variant's generated files go: the repository itself for MNIST."""
        return PROJECT_ROOT if self.is_default else BUILD_DIR / self.name

    @property
    def dist(self) -> Path:
        return DIST_DIR if self.is_default else self.root / "dist"

    @property
    def checks_dir(self) -> Path:
        return self.dist / "autograder"

    @property
    def assignment_dir(self) -> Path:
        return ASSIGNMENT_DIR if self.is_default else self.root / "assignment"

    @property
    def solutions_dir(self) -> Path:
        return SOLUTIONS_DIR if self.is_default else self.root / "solutions"

    @property
    def zip_path(self) -> Path:
        return ZIP_PATH if self.is_default else self.root / "autograder.zip"

    def master(self, folder: Path) -> Path:
        """The master for this variant, written into `folder` (MNIST: the master itself)."""
        if self.is_default:
            return MASTER_DIR
        import nbformat  # here, not at the top: the grader imports this module, and nbformat
        # is slow to import (jsonschema), which a batch's parent process does not otherwise pay

        folder.mkdir(parents=True, exist_ok=True)
        sources = master_sources(MASTER_DIR)
        notebooks = {
            p.name: nbformat.read(p, as_version=4) for p in sources if p.suffix == ".ipynb"
        }
        texts = {p.name: p.read_text() for p in sources if p.suffix != ".ipynb"}
        texts[RUBRIC.name] = RUBRIC.read_text()
        for old, new in self.edits:
            found = False
            for name, text in texts.items():
                found |= old in text
                texts[name] = text.replace(old, new)
            for nb in notebooks.values():
                for cell in nb.cells:
                    found |= old in cell.source
                    cell.source = cell.source.replace(old, new)
            if not found:
                raise ValueError(
                    f"variant {self.name}: the master no longer contains {old!r}; "
                    "update mnist_grader/variants.py"
                )
        for name, text in texts.items():
            (folder / name).write_text(text)
        for name, nb in notebooks.items():
            nbformat.write(nb, folder / name)
        return folder

    def rubric(self, master: Path) -> Path:
        return RUBRIC if self.is_default else master / RUBRIC.name


FASHION_CLASSES = (
    "T-shirt/top, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag, ankle boot"
)

VARIANTS = {
    DEFAULT: Variant(DEFAULT),
    "fashion_mnist": Variant(
        "fashion_mnist",
        (
            ('DATASET = "mnist"', 'DATASET = "fashion_mnist"'),
            ("recognising handwritten digits", "recognising clothes"),
            (
                "on **MNIST**:\n70,000 photos of handwritten digits, 28×28 pixels each, "
                "labelled 0 to 9.",
                "on **Fashion-MNIST**:\n70,000 photos of clothes, shoes and bags, 28×28 grey "
                f"pixels each, in 10 classes labelled 0 to 9 ({FASHION_CLASSES}).",
            ),
            (
                "The data is read from a local `mnist.npz` (next to this\nnotebook, or "
                "wherever `$MNIST_NPZ` points)",
                "The data is read from a local copy of the four Fashion-MNIST files (a\n"
                "`fashion-mnist` folder next to this notebook, Debian's "
                "`/usr/share/datasets/fashion-mnist`,\nor wherever `$FASHION_MNIST_DATA` points)",
            ),
            ("MNIST comes as a **training set**", "Fashion-MNIST comes as a **training set**"),
            ("10 classes (digits 0-9)", "10 classes (kinds of clothing, labelled 0-9)"),
            ("10 classes (digits 0–9)", "10 classes (kinds of clothing, labelled 0–9)"),
            ("(probability) per digit", "(probability) per class"),
            ("does on\ndigits it has never seen", "does on\nimages it has never seen"),
            ("recognises digits it has never seen", "recognises clothes it has never seen"),
            ("p ≈ 0.9999 for 7", "p ≈ 0.95 for the ankle boot"),
            ("the predicted digit", "the predicted class"),
            (
                "each bar labelled with its class, 0 to 9, with",
                "each bar labelled with its class name (`CLASS_NAMES`), with",
            ),
            # the checks' names, as the grade report shows them
            ("test_first_test_image_is_a_seven", "test_first_test_image_is_an_ankle_boot"),
            ("test_bars_labelled_0_to_9", "test_bars_labelled_with_the_class_names"),
            (
                "ax_bars.set_xticks(range(len(probs)), CLASS_NAMES)",
                "ax_bars.set_xticks(range(len(probs)), CLASS_NAMES, rotation=90)",
            ),
        ),
    ),
}


def get(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise SystemExit(
            f"unknown DATASET {name!r}; choose one of: {', '.join(VARIANTS)}"
        ) from None
