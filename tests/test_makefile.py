"""The Makefile's install stamp: pip runs again when the pins change, and only then."""

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _planned(folder: Path) -> str:
    """What `make setup` would run in `folder` (make -n: nothing is run)."""
    return subprocess.run(
        ["make", "-n", "setup"], cwd=folder, capture_output=True, text=True, check=True
    ).stdout


def test_a_fresh_clone_beside_an_installed_venv_installs_nothing(tmp_path):
    shutil.copyfile(ROOT / "Makefile", tmp_path / "Makefile")
    requirements = tmp_path / "requirements.txt"
    requirements.write_bytes((ROOT / "requirements.txt").read_bytes())
    (tmp_path / ".venv").mkdir()
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamp = tmp_path / ".venv" / f".installed-{digest}"
    stamp.touch()
    an_hour_ago = time.time() - 3600
    os.utime(stamp, (an_hour_ago, an_hour_ago))  # the checkout's files are newer than the venv
    requirements.touch()
    assert "pip install" not in _planned(tmp_path)

    requirements.write_text(requirements.read_text() + "pytest-timeout==2.4.0\n")
    assert "pip install --quiet -r requirements.txt" in _planned(tmp_path)
