"""The Gradescope autograder zip, and how it grades once unpacked.

Layout (Gradescope unpacks it into /autograder/source):
    setup.sh, run_autograder          autograder/gradescope/ (apt + venv + pip; one grading call)
    requirements.txt                  the project's pins for grading (not its development tools)
    mnist_grader/                     this package: the same grading path as `make grade`
    checks/tests/q*.py                otter's test files, public and hidden
    checks/mnist_exercise.py          the exercise's support module
    settings.json                     what the instructor chose when building it (when students
                                      see the hidden checks' results)
    data/<dataset>/*.npy              the data, uncompressed once here (so grading never downloads,
                                      nor decompresses it for every submission)
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path

from . import CHECKS_DIR, MASTER_NOTEBOOK, PROJECT_ROOT, ZIP_PATH, results
from .engine import exercise_module

# Not imported from assign, which imports nbformat: the grading parent does not need it.
NOTEBOOK_NAME = MASTER_NOTEBOOK.name

GRADESCOPE_DIR = PROJECT_ROOT / "autograder" / "gradescope"
FIXED_TIME = (2026, 1, 1, 0, 0, 0)  # same inputs, same zip bytes
ZIP_SETTINGS = "settings.json"


def _entries(data_file: Path, checks_dir: Path) -> list[tuple[str, Path]]:
    entries = [(name, GRADESCOPE_DIR / name) for name in ("setup.sh", "run_autograder")]
    package = PROJECT_ROOT / "mnist_grader"
    entries += [(f"mnist_grader/{p.name}", p) for p in sorted(package.glob("*.py"))]
    entries += [(f"checks/tests/{p.name}", p) for p in sorted((checks_dir / "tests").glob("*.py"))]
    entries.append(("checks/mnist_exercise.py", checks_dir / "mnist_exercise.py"))
    return entries


def _data_entries(data_file: Path, checks_dir: Path) -> list[tuple[str, bytes]]:
    import io

    import numpy as np

    exercise = exercise_module(checks_dir)
    entries = []
    for name, array in exercise.read_arrays(data_file).items():
        buffer = io.BytesIO()
        np.save(buffer, array)
        entries.append((f"data/{exercise.DATASET}/{name}.npy", buffer.getvalue()))
    return entries


SECTION_MARK = "# --- "
GRADING_SECTION = "# --- grading"
DEVELOPMENT_LINE = "# --- development only"  # students get every pin above it


def grading_requirements() -> str:
    """The grading section of requirements.txt (what the grader and the kernel import), for the
    zip's setup.sh: otter, which only builds the notebooks and runs students' checks, and the
    development tools stay out of the Gradescope image."""
    lines = (PROJECT_ROOT / "requirements.txt").read_text().splitlines(keepends=True)
    start = next(n for n, line in enumerate(lines) if line.startswith(GRADING_SECTION))
    end = next(
        (n for n in range(start + 1, len(lines)) if lines[n].startswith(SECTION_MARK)), len(lines)
    )
    return "".join(lines[start:end])


def build_zip(
    data_file: Path,
    checks_dir: Path = CHECKS_DIR,
    target: Path = ZIP_PATH,
    hidden_visibility: str = results.GRADESCOPE_HIDDEN_VISIBILITY,
) -> Path:
    if hidden_visibility not in results.VISIBILITIES:
        raise ValueError(f"hidden visibility {hidden_visibility!r}: one of {results.VISIBILITIES}")
    files = [(name, source.read_bytes()) for name, source in _entries(data_file, checks_dir)]
    files.append(("requirements.txt", grading_requirements().encode()))
    settings = {"hidden_visibility": hidden_visibility}
    files.append((ZIP_SETTINGS, json.dumps(settings, indent=1).encode()))
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files + _data_entries(data_file, checks_dir):
            info = zipfile.ZipInfo(name, FIXED_TIME)
            executable = name in ("setup.sh", "run_autograder")
            info.external_attr = (0o755 if executable else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return target


def find_gradescope_submission(folder: Path) -> Path | None:
    """The notebook a student uploaded: the assignment's notebook name first, then any one."""
    candidates = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not p.is_symlink()  # a link could name any file of root's
        and p.suffix in (".ipynb", ".zip")
        and ".ipynb_checkpoints" not in p.parts
    )
    named = [p for p in candidates if p.name == NOTEBOOK_NAME]
    return (named or candidates or [None])[0]


def zip_settings(source: Path) -> dict:
    """What the zip was built with (settings.json); a zip built before it: the defaults."""
    try:
        return json.loads((source / ZIP_SETTINGS).read_text())
    except FileNotFoundError:
        return {"hidden_visibility": results.GRADESCOPE_HIDDEN_VISIBILITY}


SUBMISSION_METADATA = "submission_metadata.json"  # Gradescope's, beside source/ and submission/
METADATA_VALUE_CHARS = 200


def submission_metadata_lines(root: Path) -> list[str]:
    """Who submitted, which submission and assignment, from Gradescope's submission_metadata.json:
    for the instructor's log, never the student's output. Missing or malformed, a line saying so
    (grading goes on: the file names people, it does not decide a score)."""
    path = root / SUBMISSION_METADATA

    def text(value) -> str:
        return str(value)[:METADATA_VALUE_CHARS]

    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return [f"submission metadata: {path} is missing"]
    except (OSError, ValueError) as error:
        return [f"submission metadata: {path} is unreadable ({type(error).__name__}: {error})"]
    if not isinstance(data, dict):
        return [f"submission metadata: {path} holds a {type(data).__name__}, not an object"]
    assignment = data.get("assignment") if isinstance(data.get("assignment"), dict) else {}
    lines = [
        f"submission metadata: submission {text(data.get('id', '?'))}, created "
        f"{text(data.get('created_at', '?'))}, by {text(data.get('submission_method', '?'))}; "
        f"assignment {text(assignment.get('title', '?'))} ({text(assignment.get('id', '?'))})"
    ]
    users = data.get("users") if isinstance(data.get("users"), list) else []
    for user in users:
        if isinstance(user, dict):
            fields = (text(user.get(key, "?")) for key in ("name", "email", "id"))
            lines.append("  submitter: {} <{}> (Gradescope id {})".format(*fields))
    if not users:
        lines.append("  submitter: none named")
    return lines


def grade_gradescope(root: Path, settings_for) -> Path:
    """Grade $root/submission into $root/results/results.json, through the batch grader."""
    from . import batch
    from .phases import PhaseClock

    clock = PhaseClock()  # its phases go to run_autograder's output, which students never see
    clock.mark("run_autograder: start and imports")
    source = root / "source"
    # The zip's one dataset folder, by listing: the checks' module would import numpy here too.
    (data,) = [folder for folder in (source / "data").iterdir() if folder.is_dir()]
    settings = settings_for(source / "checks", data)
    target = root / "results" / "results.json"
    results.reserve(target)  # before any student code runs
    # run_autograder's output is the instructor's (stdout_visibility "hidden" in results.json)
    print("\n".join(submission_metadata_lines(root)), flush=True)
    submission = find_gradescope_submission(root / "submission")
    with tempfile.TemporaryDirectory(prefix="mnist-gradescope-") as tmp:
        if submission is None:
            empty = Path(tmp) / "no-notebook.ipynb"
            empty.write_bytes(b"")
            submission = empty
        out = Path(tmp) / "out"
        batch.grade_batch(
            submission, out, settings, jobs=1, progress=False, exports=False, class_report=False
        )
        clock.mark("run_autograder: sandbox check, waiting for the grading process")
        graded = out / batch.output_names([submission])[0] / "results.json"
        data = results.read_results(graded)
        results.hold_hidden(data, zip_settings(source)["hidden_visibility"])
        if submission.name == "no-notebook.ipynb":
            data["output"] = (
                f"No notebook found in your submission: upload {NOTEBOOK_NAME}.\n" + data["output"]
            )
        results.write_json(data, target)
        # Gradescope shows run_autograder's output to instructors only (stdout_visibility is
        # "hidden" in results.json): the grading child's log goes there, never to the student.
        log = graded.parent / batch.LOG_NAME
        if log.is_file():
            print(log.read_text(errors="replace"))
        shutil.rmtree(out, ignore_errors=True)
    clock.mark("run_autograder: results.json")
    return target
