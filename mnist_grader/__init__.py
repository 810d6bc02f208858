"""Grading for the "first steps in computer vision" MNIST exercise.

One module per concern: notebook (reading submissions), sandbox (the student's kernel process),
session (running cells and calls with time limits), probe + wire (the data crossing between
them), checks (running otter's test files in the grader), engine (one submission), batch (many),
results (results.json, gradebook), assign (building the notebooks), package (the Gradescope zip),
cli (the commands); questions (the master's questions and points, for the tests and the docs).
"""

import sys
from pathlib import Path

# jsonschema, which nbformat imports in every grading process, also imports the optional
# rfc3987_syntax when it is installed (jupyterlab's dependencies bring it), and that import builds
# a parser: a noticeable cost in time and memory per grading process (seen in `make bench`), for
# IRI format checks nbformat never makes. Marking it absent skips it.
sys.modules.setdefault("rfc3987_syntax", None)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MASTER_DIR = PROJECT_ROOT / "autograder" / "master"
MASTER_NOTEBOOK = MASTER_DIR / "mnist_first_steps.ipynb"
DIST_DIR = PROJECT_ROOT / "autograder" / "dist"  # otter assign's output (built, not committed)
CHECKS_DIR = DIST_DIR / "autograder"  # tests/q*.py, public and hidden, and mnist_exercise.py
ASSIGNMENT_DIR = PROJECT_ROOT / "assignment"
SOLUTIONS_DIR = PROJECT_ROOT / "solutions"
ZIP_PATH = PROJECT_ROOT / "autograder" / "autograder.zip"
