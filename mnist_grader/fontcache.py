"""matplotlib's font list, made once per venv and given to every cold kernel.

A kernel's matplotlib cache folder (MPLCONFIGDIR, in its sandbox folder) starts empty, so
without this each cold kernel (each Gradescope submission, a batch with --cold-kernels, a
restarted kernel) lists the machine's fonts again when Keras imports matplotlib: `fc-list` as a
new user with no fontconfig cache, then every font file opened. That was the largest part of
a cold kernel's setup cell beyond the imports themselves (make bench, docs/performance.md).

- `prepare()` (setup.sh on Gradescope; the grader before it starts kernels, a no-op once done)
  lets matplotlib write its list into a folder of the venv's, in a separate Python so the
  grader itself never imports matplotlib for it.
- `prepared()` is the list's file, or None; the kernelspec passes it to the launcher, which
  reads it as root (only a file root owns, never through a link) before it drops to the
  student's uid, and writes a copy into the kernel's own cache folder after. Each kernel has
  its own copy: nothing one kernel does to it reaches another.

matplotlib checks the list's format version when it reads it and lists the fonts again if the
version differs, so a list from another matplotlib costs time, never correctness.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

PATTERN = "fontlist-v*.json"  # matplotlib's name: fontlist-v<FontManager.__version__>.json
MAX_BYTES = 8 * 2**20  # a machine with thousands of fonts stays far below


def default_folder() -> Path:
    """The venv's folder for the lists of its matplotlib (another version: another folder)."""
    import importlib.metadata  # here: the kernel's launcher imports this module too

    try:
        version = importlib.metadata.version("matplotlib")
    except importlib.metadata.PackageNotFoundError:
        version = "missing"
    return Path(sys.prefix) / "share" / "mnist_grader" / f"matplotlib-{version}"


def prepared(folder: Path | None = None) -> Path | None:
    """The font list made by `prepare`, or None."""
    found = sorted((folder or default_folder()).glob(PATTERN))
    return found[-1] if found else None


def prepare(folder: Path | None = None) -> Path | None:
    """Make the font list if there is none yet; None where the folder cannot be written (a
    system Python, a read-only venv): kernels then list the fonts themselves, as before."""
    folder = folder or default_folder()
    if (found := prepared(folder)) is not None:
        return found
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # matplotlib writes into a fresh folder, moved into place whole: two graders preparing
        # at once each write their own, and the last rename wins.
        with tempfile.TemporaryDirectory(dir=folder) as scratch:
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": scratch,
                "MPLCONFIGDIR": scratch,
                "MPLBACKEND": "agg",
            }
            subprocess.run(
                [sys.executable, "-c", "import matplotlib.font_manager"],
                env=env,
                cwd=scratch,
                check=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=300,
            )
            for made in Path(scratch).glob(PATTERN):
                made.chmod(0o644)
                os.replace(made, folder / made.name)
    except (OSError, subprocess.SubprocessError):
        return None
    return prepared(folder)


def read_own(path: Path) -> tuple[str, bytes] | None:
    """(name, content) of a font list this process owns, read without following a link; None
    for anything else (missing, a link, another user's, too large)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if (
            not stat.S_ISREG(info.st_mode)
            or info.st_uid != os.geteuid()
            or info.st_size > MAX_BYTES
            or not path.match(PATTERN)
        ):
            return None
        return path.name, handle.read(MAX_BYTES + 1)[:MAX_BYTES]


if __name__ == "__main__":  # setup.sh: python -m mnist_grader.fontcache
    made = prepare()
    print(f"matplotlib's font list for the kernels: {made or 'not made (folder not writable)'}")
    sys.exit(0)
