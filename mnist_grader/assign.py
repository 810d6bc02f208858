"""Build the notebooks from the master: `otter assign`, then copy into assignment/ and solutions/.

autograder/master/mnist_first_steps.ipynb is the one source: otter assign writes
autograder/dist/student (the notebook students get, public checks) and autograder/dist/autograder
(the solution, public and hidden checks). assignment/ is a copy of dist/student; solutions/ gets
the solution notebook beside the hand-written rubric.md. Cell ids are renumbered because otter
gives its own cells random ids, which would make every build differ from the committed one.

Another dataset (mnist_grader.variants) is built the same way from an edited copy of the master,
into build/<dataset>/ (dist/, assignment/, solutions/ with its rubric), leaving the MNIST files
alone.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from . import DIST_DIR, MASTER_DIR, MASTER_NOTEBOOK, PROJECT_ROOT, variants

NOTEBOOK_NAME = MASTER_NOTEBOOK.name


def run_otter_assign(dist: Path = DIST_DIR, master_dir: Path = MASTER_DIR) -> Path:
    shutil.rmtree(dist, ignore_errors=True)
    otter = Path(sys.executable).with_name("otter")
    subprocess.run(
        [str(otter), "assign", NOTEBOOK_NAME, str(dist.resolve())],
        cwd=master_dir,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    for notebook in dist.rglob("*.ipynb"):
        renumber_cell_ids(notebook)
    (dist / "student" / "requirements.txt").write_text(student_requirements())
    return dist


STUDENT_PYTHONS = ("3.10", "3.11", "3.12", "3.13")  # what tensorflow 2.21 has wheels for


def student_requirements() -> str:
    """assignment/requirements.txt: the project's pins above its development line, so that
    students run what the course tested. tensorflow-cpu has no macOS wheels: macOS gets the
    same version of tensorflow."""
    from .package import DEVELOPMENT_LINE

    text = (PROJECT_ROOT / "requirements.txt").read_text()
    lines = [
        f"# What {NOTEBOOK_NAME} needs, for Python {STUDENT_PYTHONS[0]} to {STUDENT_PYTHONS[-1]} "
        "(written by `make assignment`",
        "# from the course's pins). On your computer, in a terminal in this folder:",
        "#     python -m pip install -r requirements.txt jupyterlab",
        "# On Colab, the notebook's first cell installs what Colab lacks.",
    ]
    for line in text[: text.index(DEVELOPMENT_LINE)].splitlines():
        pin = line.split("#")[0].strip()
        if not pin:
            continue
        if pin.startswith("tensorflow-cpu=="):
            requirement, _, marker = (part.strip() for part in pin.partition(";"))
            also = f"{marker} and " if marker else ""
            lines.append(f'{requirement}; {also}sys_platform != "darwin"')
            version = requirement.removeprefix("tensorflow-cpu==")
            lines.append(f'tensorflow=={version}; {also}sys_platform == "darwin"')
        else:
            lines.append(pin)
    return "\n".join(lines) + "\n"


def renumber_cell_ids(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index:03d}"
    nbformat.write(nb, path)


def generated_files(dist: Path) -> dict[str, Path]:
    """Path under the variant's root -> built file, for everything assign writes there."""
    files = {
        f"assignment/{p.relative_to(dist / 'student')}": p
        for p in sorted((dist / "student").rglob("*"))
        if p.is_file()
    }
    files[f"solutions/{NOTEBOOK_NAME}"] = dist / "autograder" / NOTEBOOK_NAME
    return files


def build_variant_dist(variant: variants.Variant, dist: Path) -> Path:
    """otter assign on the variant's master (MNIST: the master itself) into `dist`."""
    with tempfile.TemporaryDirectory(prefix="mnist-master-") as tmp:
        master = variant.master(Path(tmp) / "master")
        run_otter_assign(dist, master)
        if not variant.is_default:
            shutil.copyfile(variant.rubric(master), dist / "rubric.md")
    return dist


def build(variant: variants.Variant = variants.VARIANTS[variants.DEFAULT]) -> None:
    dist = build_variant_dist(variant, variant.dist)
    shutil.rmtree(variant.assignment_dir, ignore_errors=True)
    variant.solutions_dir.mkdir(parents=True, exist_ok=True)
    files = generated_files(dist)
    if not variant.is_default:  # MNIST's rubric is the hand-written one already in solutions/
        files["solutions/rubric.md"] = dist / "rubric.md"
    for repo_path, built in files.items():
        target = variant.root / repo_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, target)
