#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (Ubuntu 22.04).
# apt + venv + pip only: no Miniforge, no browser download. Versions come from requirements.txt,
# the project's one list of pins (with markers for Python 3.10, the image's Python).
set -euo pipefail
SOURCE=/autograder/source
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install --no-cache-dir --upgrade pip
/autograder/venv/bin/pip install --no-cache-dir -r "$SOURCE/requirements.txt"
# The checks (public and hidden) are root's alone: the student's code runs as another user.
chmod -R go-rwx "$SOURCE/checks"
