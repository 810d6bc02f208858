#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (Ubuntu 22.04).
# apt + venv + pip only: no Miniforge, no browser download. Versions come from requirements.txt,
# the grading section of the project's one list of pins (with markers for Python 3.10, the
# image's Python): what the grader and the student's kernel import, not otter.
# The venv is made from the system's interpreter, named by path: a `python3` first on PATH may be
# one the sandbox user cannot run (pyenv or conda under /root, mode 700), and then no kernel starts.
# AUTOGRADER_ROOT and AUTOGRADER_BASE_PYTHON let the test suite build such a tree elsewhere.
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
BASE_PYTHON="${AUTOGRADER_BASE_PYTHON:-/usr/bin/python3}"
SOURCE="$ROOT/source"
if ! "$BASE_PYTHON" -c "import ensurepip, venv" 2>/dev/null; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv
fi
"$BASE_PYTHON" -m venv "$ROOT/venv"
"$ROOT/venv/bin/pip" install --no-cache-dir --upgrade pip
"$ROOT/venv/bin/pip" install --no-cache-dir -r "$SOURCE/requirements.txt"
# Bytecode for the grader and the checks, made once here: each submission runs in a fresh
# container, whose two grading processes would otherwise compile them again every time.
"$ROOT/venv/bin/python" -m compileall -q "$SOURCE/mnist_grader" "$SOURCE/checks"
# matplotlib's font list, made once here and copied into each kernel's empty cache folder: a
# kernel would otherwise list the machine's fonts again for every submission.
(cd "$SOURCE" && "$ROOT/venv/bin/python" -m mnist_grader.fontcache)
# The checks (public and hidden) are root's alone: the student's code runs as another user.
chmod -R go-rwx "$SOURCE/checks"
