"""What students install, and that grading leaves it alone.

assignment/requirements.txt is made from the project's pins (`make assignment`); it must resolve
for every Python the exercise supports (pip --dry-run against the package index, as
tests/test_gradescope_zip.py does for Gradescope's 3.10), on Linux, macOS and Windows. The
notebook's first cell installs it, or on Colab only what Colab lacks, at the same pins. The grader
runs neither the install lines nor the export cell in the sandboxed kernel.
"""

from __future__ import annotations

import subprocess
import sys

import nbformat
from packaging.requirements import Requirement

from mnist_grader import ASSIGNMENT_DIR, PROJECT_ROOT, assign, package
from mnist_grader.notebook import read_code_cells
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
