"""The Gradescope zip: what it carries, and that its run_autograder grades a real upload."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from mnist_grader import package
from tests import bank
from tests.conftest import assert_gradescope_results, question_scores


@pytest.fixture(scope="module")
def built_zip(dist, data_file, tmp_path_factory):
    return package.build_zip(
        data_file, dist / "autograder", tmp_path_factory.mktemp("zip") / "autograder.zip"
    )


def test_zip_carries_checks_data_and_the_grader(built_zip, dist):
    names = zipfile.ZipFile(built_zip).namelist()
    for required in (
        "setup.sh",
        "run_autograder",
        "requirements.txt",
        "data/mnist/x_train.npy",
        "checks/mnist_exercise.py",
        "mnist_grader/engine.py",
        "mnist_grader/cli.py",
    ):
        assert required in names
    hidden = sorted(p.name for p in (dist / "autograder" / "tests").glob("q*.py"))
    assert (
        sorted(n.removeprefix("checks/tests/") for n in names if n.startswith("checks/tests/"))
        == hidden
    )


def test_setup_installs_with_apt_and_pip_only(built_zip):
    with zipfile.ZipFile(built_zip) as archive:
        setup = "\n".join(
            line
            for line in archive.read("setup.sh").decode().splitlines()
            if not line.lstrip().startswith("#")
        )
        requirements = archive.read("requirements.txt").decode()
    assert "apt-get install" in setup and '/bin/pip" install --no-cache-dir -r' in setup
    for download in ("curl", "wget", "Miniforge", "mamba", "conda", "chromium", "playwright"):
        assert download not in setup
    assert "tensorflow-cpu==2.21.0" in requirements and "ipykernel==" in requirements
    for not_graded in ("otter-grader", "pytest", "jupyterlab", "playwright", "pyyaml"):
        assert not_graded not in requirements  # authoring and development only
    assert "/usr/bin/python3" in setup  # the system's interpreter, by path, not PATH's python3
    assert '/bin/python" -m compileall -q "$SOURCE/mnist_grader" "$SOURCE/checks"' in setup
    assert 'python_version < "3.11"' in requirements  # Gradescope's Ubuntu 22.04 has 3.10


def test_zip_is_reproducible(dist, data_file, tmp_path):
    first = package.build_zip(data_file, dist / "autograder", tmp_path / "a.zip")
    second = package.build_zip(data_file, dist / "autograder", tmp_path / "b.zip")
    assert first.read_bytes() == second.read_bytes()


def _gradescope_tree(built_zip, tmp_path, submission):
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "results").mkdir()
    with zipfile.ZipFile(built_zip) as archive:
        archive.extractall(root / "source")
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    (root / "run_autograder").chmod(0o755)
    if submission is not None:
        shutil.copy(submission, root / "submission" / "mnist_first_steps.ipynb")
    return root


def _run_autograder(root):
    """results.json and run_autograder's output (the instructor's: Gradescope's stdout)."""
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable}
    env.pop("MNIST_NPZ", None)  # the zip's own data must be used
    run = subprocess.run(
        [str(root / "run_autograder")],
        env=env,
        check=True,
        timeout=600,
        stdout=subprocess.PIPE,
        text=True,
    )
    return json.loads((root / "results" / "results.json").read_text()), run.stdout


# Gradescope's submission_metadata.json, as its documentation shows it (fewer fields)
METADATA = {
    "id": 123456,
    "created_at": "2026-03-01T14:22:32.365935-08:00",
    "assignment": {"id": 25828, "title": "MNIST first steps (code)", "total_points": "24.0"},
    "submission_method": "upload",
    "users": [{"email": "ada@example.edu", "id": 1234, "name": "Ada Lovelace"}],
    "previous_submissions": [],
}


def test_run_autograder_grades_an_upload(built_zip, bank_dir, tmp_path):
    """Graded as the bank expects, in Gradescope's fields; the hidden checks held back until the
    due date (the zip's default); who submitted is in the instructor's log only."""
    root = _gradescope_tree(built_zip, tmp_path, bank_dir / "fails_q5_argmax_axis0.ipynb")
    (root / "submission_metadata.json").write_text(json.dumps(METADATA))
    graded, log = _run_autograder(root)
    case = next(c for c in bank.CASES if c.name == "fails_q5_argmax_axis0")
    scores = question_scores(graded)
    assert scores == bank.expected_scores(case), [t["output"] for t in graded["tests"]]
    assert graded["score"] == sum(bank.expected_scores(case).values())
    assert_gradescope_results(graded, "after_due_date")
    public = [t for t in graded["tests"] if t["visibility"] == "visible"]
    got, of = sum(t["score"] for t in public), sum(t["max_score"] for t in public)
    assert of < sum(bank.FULL_MARKS.values()) and got == of - 1  # its one failed public check
    assert graded["output"].startswith(f"Public checks: {got:g} / {of:g} (graded). The hidden")
    assert "submission 123456, created 2026-03-01T14:22:32" in log
    assert "submitter: Ada Lovelace <ada@example.edu> (Gradescope id 1234)" in log
    assert "MNIST first steps (code)" in log
    shown = json.dumps(graded)
    assert "Ada" not in shown and "ada@example.edu" not in shown and "123456" not in shown


def test_run_autograder_without_a_notebook_still_writes_results(built_zip, tmp_path):
    root = _gradescope_tree(built_zip, tmp_path, None)
    graded, log = _run_autograder(root)
    assert graded["score"] == 0
    assert "No notebook found" in graded["output"]
    assert f"{root / 'submission_metadata.json'} is missing" in log  # said, and graded anyway


@pytest.mark.parametrize(
    "metadata, said",
    [
        ("{not json", "is unreadable (JSONDecodeError"),
        ("[1, 2]", "holds a list, not an object"),
        ('{"id": 7, "users": "Ada", "assignment": 3}', "submission 7, created ?"),
    ],
)
def test_malformed_submission_metadata_is_logged_and_grading_goes_on(
    dist, data_file, tmp_path, metadata, said
):
    """A zip built to hold the hidden checks until grades are published, given metadata it
    cannot use: the log says so, the results are written all the same."""
    target = tmp_path / "published.zip"
    built = package.build_zip(data_file, dist / "autograder", target, "after_published")
    root = _gradescope_tree(built, tmp_path, None)
    (root / "submission_metadata.json").write_text(metadata)
    graded, log = _run_autograder(root)
    assert said in log
    assert graded["extra_data"]["status"] == "unreadable"
    assert_gradescope_results(graded, "after_published")
    assert "when your instructor publishes the grades" in graded["output"]


GRADESCOPE_PYTHON = "3.10"  # Ubuntu 22.04, Gradescope's default image
MANYLINUX = [
    "manylinux_2_35_x86_64",
    "manylinux_2_31_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "any",
]


def test_pins_resolve_for_the_gradescope_python(tmp_path):
    """setup.sh's `pip install -r requirements.txt` must work on Python 3.10: resolve it (pip
    --dry-run against the package index) with the markers evaluated for 3.10."""
    from packaging.requirements import Requirement

    pins = []
    for line in package.grading_requirements().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(
                {"python_version": GRADESCOPE_PYTHON}
            ):
                requirement.marker = None
                pins.append(str(requirement))
    (tmp_path / "requirements.txt").write_text("\n".join(pins))
    platforms = [arg for tag in MANYLINUX for arg in ("--platform", tag)]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--python-version",
            GRADESCOPE_PYTHON,
            "--only-binary=:all:",
            *platforms,
            "--target",
            str(tmp_path / "target"),
            "-r",
            str(tmp_path / "requirements.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_gradescope_parent_stays_light_and_shares_the_zips_data(built_zip, tmp_path):
    """run_autograder's own process imports neither nbformat nor numpy (the grading process it
    starts does, once), writes no class report for its one submission, and hands the zip's data
    to the grading process where it lies instead of copying 55 MB for every submission."""
    from mnist_grader import sandbox

    folder = tempfile.mkdtemp(prefix="test-zip-", dir=sandbox.work_root())  # not in /tmp
    try:
        Path(folder).chmod(0o755)  # as /autograder is
        root = _gradescope_tree(built_zip, Path(folder), None)
        # not a notebook: a grading process starts, and says so without starting a kernel
        (root / "submission" / "mnist_first_steps.ipynb").write_text("{not a notebook")
        source = root / "source"
        code = (
            "import sys; from pathlib import Path; from mnist_grader import cli, package;"
            "args = cli.build_parser().parse_args(['gradescope', '--root', sys.argv[1]]);"
            "package.grade_gradescope(Path(sys.argv[1]), lambda c, d: cli._settings(args, c, d));"
            "print('imported:', sorted(m for m in sys.modules if m.split('.')[0] in "
            "('nbformat', 'numpy', 'mnist_grader')))"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("MNIST_")}
        shown = subprocess.run(
            [sys.executable, "-c", code, str(root)],
            cwd=source,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        ).stdout
        imported = shown.split("imported:")[1]
        assert "nbformat" not in imported and "numpy" not in imported
        assert "mnist_grader.report" not in imported  # no class report for one submission
        assert "mnist_grader.engine" in imported  # the names are what they say
        assert f"--data-file {source / 'data' / 'mnist'} " in shown  # the zip's own, uncopied
        assert json.loads((root / "results" / "results.json").read_text())["score"] == 0
    finally:
        shutil.rmtree(folder)
