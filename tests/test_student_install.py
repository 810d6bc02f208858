"""What students install, and that grading leaves it alone.

assignment/requirements.txt is made from the project's pins (`make assignment`); it must resolve
for every Python the exercise supports (pip --dry-run against the package index, as
tests/test_gradescope_zip.py does for Gradescope's 3.10), on Linux, macOS and Windows. The
README's Linux steps, run as written with Debian's python3 in a copy of assignment/, make a
virtual environment where the notebook works (PEP 668: no install outside one). The notebook's
first cell installs the requirements, or on Colab only what Colab lacks, at the same pins, and
says to restart only when it installed something. The grader runs neither the install lines nor
the export cell in the sandboxed kernel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement

from mnist_grader import ASSIGNMENT_DIR, PROJECT_ROOT, SOLUTIONS_DIR, assign, package
from mnist_grader.notebook import read_code_cells
from tests.conftest import require
from tests.test_gradescope_zip import MANYLINUX

NOTEBOOK = ASSIGNMENT_DIR / assign.NOTEBOOK_NAME
REQUIREMENTS = ASSIGNMENT_DIR / "requirements.txt"
PLATFORMS = {
    "linux": MANYLINUX,
    "darwin": ["macosx_14_0_arm64", "macosx_12_0_arm64", "macosx_11_0_arm64", "any"],
    "win32": ["win_amd64", "any"],
}
# Linux for every Python; macOS and Windows at both ends (each resolution costs ~15 s of index)
TARGETS = [(python, "linux") for python in assign.STUDENT_PYTHONS] + [
    (assign.STUDENT_PYTHONS[0], "darwin"),
    (assign.STUDENT_PYTHONS[-1], "win32"),
]


def project_pins() -> dict[str, set[str]]:
    """Package -> the versions the project pins for it (one per Python-version marker)."""
    text = (PROJECT_ROOT / "requirements.txt").read_text()
    pins: dict[str, set[str]] = {}
    for line in text[: text.index(package.DEVELOPMENT_LINE)].splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            pins.setdefault(requirement.name, set()).add(str(requirement.specifier))
    return pins


def install_cell() -> str:
    return next(c.source for c in nbformat.read(NOTEBOOK, 4).cells if c.cell_type == "code")


def test_first_cell_installs_the_requirements_or_on_colab_what_it_lacks():
    lines = [line.strip() for line in install_cell().splitlines() if "%pip install" in line]
    assert len(lines) == 2, lines
    colab, elsewhere = lines
    assert elsewhere == "%pip install --quiet -r requirements.txt"
    pins = project_pins()
    wanted = [Requirement(token) for token in colab.split()[3:]]
    assert {r.name for r in wanted} == {"otter-grader", "fpdf2", "mistune"}
    for requirement in wanted:
        assert pins[requirement.name] == {str(requirement.specifier)}, requirement


def test_requirements_are_the_projects_pins():
    text = REQUIREMENTS.read_text()
    assert text == assign.student_requirements(), "stale: run `make assignment`"
    listed = [Requirement(line) for line in text.splitlines() if line and line[0] != "#"]
    pins = project_pins()
    assert {r.name for r in listed} == set(pins) | {"tensorflow"}
    for requirement in listed:
        name = "tensorflow-cpu" if requirement.name == "tensorflow" else requirement.name
        assert str(requirement.specifier) in pins[name], requirement
    tensorflow = [r for r in listed if r.name.startswith("tensorflow")]
    for platform in PLATFORMS:  # exactly one TensorFlow everywhere (tensorflow-cpu: no macOS)
        chosen = [r.name for r in tensorflow if r.marker.evaluate({"sys_platform": platform})]
        assert chosen == (["tensorflow"] if platform == "darwin" else ["tensorflow-cpu"])


def resolve(python: str, platform: str, folder) -> subprocess.Popen:
    """Start `pip install -r requirements.txt jupyterlab` (the README's command) as a dry run for
    that Python and platform, the markers evaluated for it."""
    environment = {"python_version": python, "sys_platform": platform}
    pins = []
    for line in REQUIREMENTS.read_text().splitlines():
        if line and line[0] != "#":
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(environment):
                requirement.marker = None
                pins.append(str(requirement))
    folder.mkdir()
    (folder / "requirements.txt").write_text("\n".join([*pins, "jupyterlab"]))
    platforms = [arg for tag in PLATFORMS[platform] for arg in ("--platform", tag)]
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"),
            *("--quiet", "--python-version", python, "--only-binary=:all:", *platforms),
            *("--target", str(folder / "target"), "-r", str(folder / "requirements.txt")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_requirements_resolve_for_every_python(tmp_path):
    """All at once: each waits on the package index more than on the CPU."""
    runs = {target: resolve(*target, tmp_path / "-".join(target)) for target in TARGETS}
    failed = {}
    for target, run in runs.items():
        _, errors = run.communicate(timeout=600)
        if run.returncode != 0:
            failed[target] = errors[-1500:]
    assert not failed, failed


def test_grading_skips_the_install_lines_and_the_export_cell():
    """The handed-out notebook as the grader reads it: otter's cells and the export cell left
    out, the install cell's pip lines `pass`, everything else as written."""
    cells = nbformat.read(NOTEBOOK, 4).cells
    # position among all cells, from 1 (as read_code_cells numbers them) -> source
    code = {i: c.source for i, c in enumerate(cells, start=1) if c.cell_type == "code"}
    read = dict(read_code_cells(NOTEBOOK))
    skipped = [index for index in code if index not in read]
    first, second, last = sorted(code)[0], sorted(code)[1], sorted(code)[-1]
    assert [code[i] for i in skipped if "grader.check(" not in code[i]] == [
        code[second],  # grader = otter.Notebook(...)
        code[last],  # answers_pdf.export(grader)
    ]
    install = read[first]
    assert "%pip" not in install and install.count("pass") == 2
    compile(install, "install", "exec")  # plain Python now
    for index, source in read.items():
        if index != first:
            assert source == code[index]


def test_pip_lines_anywhere_become_pass(tmp_path):
    source = (
        "import os\n!pip install seaborn\nif True:\n    %pip  install -q x\nx = 1  # pip install\n"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nbformat.write(nb, tmp_path / "student.ipynb")
    assert read_code_cells(tmp_path / "student.ipynb") == [
        (1, "import os\npass\nif True:\n    pass\nx = 1  # pip install\n")
    ]


DEBIAN_PYTHON = Path("/usr/bin/python3")
EVERYTHING_INSTALLED = "Everything the notebook needs is installed: go on with the next cell."
RESTART = "Installed. Now restart the kernel (Kernel > Restart), then run the next cell."


def readme_linux_steps() -> str:
    """The README's student steps for Linux and macOS, as written there."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    after = readme[readme.index("**Linux and macOS**") :]
    return textwrap.dedent(re.search(r"```bash\n(.*?)```", after, re.DOTALL).group(1))


def _student_environment() -> dict:
    """A shell as a student's: Debian's python3 first on PATH, no project venv active."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    ours = str(PROJECT_ROOT / ".venv")
    path = [p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(ours)]
    env["PATH"] = os.pathsep.join([str(DEBIAN_PYTHON.parent), *path])
    return env


@pytest.fixture(scope="module")
def student_folder(tmp_path_factory, data_file) -> Path:
    """A copy of assignment/ where the README's Linux steps ran, line by line as written."""
    usable = subprocess.run([DEBIAN_PYTHON, "-c", "import ensurepip, venv"]).returncode == 0
    require(DEBIAN_PYTHON.is_file() and usable, "Debian's python3 with python3-venv")
    folder = tmp_path_factory.mktemp("student") / "mnist"
    shutil.copytree(ASSIGNMENT_DIR, folder)
    steps = readme_linux_steps()
    assert steps.splitlines()[0] == "python3 -m venv .venv", steps
    run = subprocess.run(
        ["bash", "-e", "-c", steps],
        cwd=folder,
        env=_student_environment(),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (folder / ".venv" / "bin" / "jupyter-lab").is_file()  # the README's next step
    shutil.copyfile(data_file, folder / "mnist.npz")  # "Put mnist.npz beside the notebook"
    return folder


# Runs in the student's venv (its nbclient, its python3 kernel): the notebook's first code cell
# ("first") or all of its cells, saved with their outputs just before the export cell (which
# exports the saved file, as a student does with File > Save); each code cell's text out as JSON.
RUN_CELLS = """
import json, sys
import nbformat
from nbclient import NotebookClient

path, which = sys.argv[1:]
nb = nbformat.read(path, 4)
code = [c for c in nb.cells if c.cell_type == "code"]
client = NotebookClient(nb, timeout=900, kernel_name="python3")
with client.setup_kernel():
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or (which == "first" and cell is not code[0]):
            continue
        if "answers_pdf.export(grader)" in cell.source:
            nbformat.write(nb, path)
        client.execute_cell(cell, index)

def text(output):
    if output.output_type == "stream":
        return output.text
    if output.output_type == "error":
        return f"{output.ename}: {output.evalue}"
    return output.get("data", {}).get("text/plain", "")

ran = code[:1] if which == "first" else code
print(json.dumps(["".join(text(o) for o in c.outputs) for c in ran]))
"""


def run_cells(folder: Path, which: str, notebook: str = assign.NOTEBOOK_NAME) -> list[str]:
    env = {**_student_environment(), "MNIST_EPOCHS": "1", "MNIST_TRAIN_IMAGES": "2000"}
    env.pop("MNIST_NPZ", None)  # the student's mnist.npz beside the notebook
    run = subprocess.run(
        [folder / ".venv" / "bin" / "python", "-c", RUN_CELLS, notebook, which],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.splitlines()[-1])


def test_first_cell_says_restart_only_when_it_installed_something(student_folder):
    """In the README's environment everything is there: the cell says so, and no "restart"
    (IPython's note after every %pip included). A package missing: it installs it at its pin
    and says to restart."""
    [said] = run_cells(student_folder, "first")
    assert said.strip() == EVERYTHING_INSTALLED, said
    assert "restart" not in said
    pip = [student_folder / ".venv" / "bin" / "python", "-m", "pip"]
    subprocess.run([*pip, "uninstall", "--yes", "--quiet", "tqdm"], check=True)
    [said] = run_cells(student_folder, "first")
    assert said.strip().endswith(RESTART), said  # after what pip itself says, if anything
    assert said.count("restart") == 1, said  # IPython's note left out
    shown = subprocess.run([*pip, "show", "tqdm"], capture_output=True, text=True, check=True)
    assert f"Version: {project_pins()['tqdm'].pop().removeprefix('==')}" in shown.stdout


def test_the_readme_environment_runs_the_checks_and_the_export(student_folder):
    """The reference notebook, run in the README's environment from top to bottom (training
    shortened): otter's grader.check passes every question and the export cell makes the PDF
    and the zip to upload."""
    notebook = student_folder / assign.NOTEBOOK_NAME
    shutil.copyfile(SOLUTIONS_DIR / assign.NOTEBOOK_NAME, notebook)
    outputs = run_cells(student_folder, "all")
    questions = [p.stem for p in sorted((ASSIGNMENT_DIR / "tests").glob("q*.py"))]
    for question in questions:
        passed = f"{question} results: All test cases passed!"
        assert any(passed in text for text in outputs), (question, outputs)
    assert notebook.with_suffix(".pdf").stat().st_size > 10_000, outputs[-1]
    assert list(student_folder.glob("*.zip")), outputs[-1]
