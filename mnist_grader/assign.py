"""Build the notebooks from the master: `otter assign`, then copy into assignment/ and solutions/.

autograder/master/mnist_first_steps.ipynb is the one source: otter assign writes
autograder/dist/student (the notebook students get, public checks) and autograder/dist/autograder
(the solution, public and hidden checks). assignment/ is a copy of dist/student; solutions/ gets
the solution notebook beside the hand-written rubric.md. Cell ids are renumbered because otter
gives its own cells random ids, which would make every build differ from the committed one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from . import ASSIGNMENT_DIR, DIST_DIR, MASTER_DIR, MASTER_NOTEBOOK, SOLUTIONS_DIR

NOTEBOOK_NAME = MASTER_NOTEBOOK.name


def run_otter_assign(dist: Path = DIST_DIR) -> Path:
    shutil.rmtree(dist, ignore_errors=True)
    otter = Path(sys.executable).with_name("otter")
    subprocess.run(
        [str(otter), "assign", MASTER_NOTEBOOK.name, str(dist.resolve())],
        cwd=MASTER_DIR,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    for notebook in dist.rglob("*.ipynb"):
        renumber_cell_ids(notebook)
    return dist


def renumber_cell_ids(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index:03d}"
    nbformat.write(nb, path)


def generated_files(dist: Path) -> dict[str, Path]:
    """Repository path -> built file, for everything assign writes into the repository."""
    files = {
        f"assignment/{p.relative_to(dist / 'student')}": p
        for p in sorted((dist / "student").rglob("*"))
        if p.is_file()
    }
    files[f"solutions/{NOTEBOOK_NAME}"] = dist / "autograder" / NOTEBOOK_NAME
    return files


def build(dist: Path = DIST_DIR) -> None:
    run_otter_assign(dist)
    shutil.rmtree(ASSIGNMENT_DIR, ignore_errors=True)
    SOLUTIONS_DIR.mkdir(exist_ok=True)
    for repo_path, built in generated_files(dist).items():
        target = ASSIGNMENT_DIR.parent / repo_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, target)
