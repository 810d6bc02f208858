"""The PDF for the hand-graded Gradescope assignment, made by the notebook's own export cell.

The reference solution, built now from the master by otter assign, is run the way a student runs
it (every cell from the top, File > Save, then the export cell). The PDF in the zip that cell makes
must hold the written answers to the manual questions (1-3) and the plot of Question 6
(`export: true`), each question starting on a new page, and none of the other questions. The
expected answers and headings are read from the master, not copied here.

Needs Debian's pandoc and texlive-xetex (otter's LaTeX exporter) and poppler-utils (reading the
PDF back); without them the PDF tests are skipped (failed in CI, which installs them).
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml
from nbclient import NotebookClient
from PIL import Image

from tests.conftest import require

ROOT = Path(__file__).resolve().parent.parent
MASTER = ROOT / "autograder" / "master" / "mnist_first_steps.ipynb"
NOTEBOOK = MASTER.name
PDF = Path(NOTEBOOK).with_suffix(".pdf").name
TOOLS = ("pandoc", "xelatex", "pdftotext", "pdfimages")
APT = "pandoc texlive-xetex texlive-fonts-recommended texlive-plain-generic poppler-utils"

pytestmark = pytest.mark.pdf


# ---------------------------------------------------------------------------------------------
# What the master says: question configs, headings and the model answers
# ---------------------------------------------------------------------------------------------


def master_questions() -> dict[str, dict]:
    """Question name -> {config, heading (first line of its text), answer (solution markdown)}."""
    questions: dict[str, dict] = {}
    current, in_solution = None, False
    for cell in nbformat.read(MASTER, as_version=4).cells:
        text = cell.source.strip()
        if cell.cell_type == "raw":
            if text.startswith("# BEGIN QUESTION"):
                config = yaml.safe_load(text.split("\n", 1)[1])
                current = questions[config["name"]] = {"config": config, "heading": None}
                current["answer"] = ""
            elif text.startswith("# END QUESTION"):
                current = None
            elif text.startswith("# BEGIN SOLUTION"):
                in_solution = True
            elif text.startswith("# END SOLUTION"):
                in_solution = False
            continue
        if current is None or cell.cell_type != "markdown":
            continue
        if in_solution:
            current["answer"] += cell.source + "\n"
        elif current["heading"] is None:
            current["heading"] = text.splitlines()[0].lstrip("#").strip()
    return questions


QUESTIONS = master_questions()
WRITTEN = [name for name, q in QUESTIONS.items() if q["config"].get("manual")]
PLOTTED = [name for name, q in QUESTIONS.items() if q["config"].get("export")]
EXPORTED = [name for name in QUESTIONS if name in WRITTEN or name in PLOTTED]
LEFT_OUT = [name for name in QUESTIONS if name not in EXPORTED]


def words(text: str) -> list[str]:
    """Lower-case words and numbers: what survives markdown -> LaTeX -> PDF -> text.

    Markup (**, `) and punctuation drop out; a word hyphenated at a line end is joined again, and
    hyphens are dropped everywhere so that "element-wise" matches however the line broke.
    """
    text = text.replace("\u00ad", "").replace("-\n", "").replace("-", "")
    return re.findall(r"[a-z0-9]+", text.lower())


def contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def test_master_exports_the_written_answers_and_the_plot():
    assert WRITTEN == ["q1", "q2", "q3"], "Questions 1-3 are the hand-graded written answers"
    assert PLOTTED == ["q6"], "q6 needs `export: true` so that its plot goes into the PDF"
    for name in WRITTEN:
        assert len(words(QUESTIONS[name]["answer"])) >= 20, f"{name} has no model answer"


def test_written_answer_cells_say_where_to_type(dist):
    """Each written question has its own answer cell, inside the region the PDF export keeps."""
    student = nbformat.read(dist / "student" / NOTEBOOK, as_version=4)
    inside, answer_cells = False, []
    for cell in student.cells:
        if cell.cell_type == "markdown" and "<!-- BEGIN QUESTION -->" in cell.source:
            inside = True
        if cell.cell_type == "markdown" and "<!-- END QUESTION -->" in cell.source:
            inside = "<!-- BEGIN QUESTION -->" in cell.source.split("<!-- END QUESTION -->")[1]
        if "otter_answer_cell" in cell.metadata.get("tags", []) and cell.cell_type == "markdown":
            assert inside, f"answer cell outside the exported region: {cell.source!r}"
            answer_cells.append(cell.source)
    assert answer_cells == ["_Type your answer here, replacing this text._"] * len(WRITTEN)


def test_export_cell_makes_a_pdf_without_running_the_tests(dist):
    cell = next(
        c for c in nbformat.read(dist / "student" / NOTEBOOK, 4).cells if "export(" in c.source
    )
    call = cell.source.splitlines()[-1]
    assert call.startswith("grader.export("), call
    assert "pdf=False" not in call and "filtering=False" not in call, call
    assert "run_tests=True" not in call, f"the export would run the checks again: {call}"


# ---------------------------------------------------------------------------------------------
# The PDF: run the solution as a student would, export, read it back
# ---------------------------------------------------------------------------------------------


def run_like_a_student(notebook: Path, env: dict[str, str]) -> nbformat.NotebookNode:
    """Run every cell in order; save the notebook (with outputs) just before the export cell,
    which exports the saved file, as a student does with File > Save."""
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook.parent)}},
    )
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                if "grader.export(" in cell.source:
                    nbformat.write(nb, notebook)
                client.execute_cell(cell, index)
    return nb


@pytest.fixture(scope="module")
def exported(dist, data_file, tmp_path_factory) -> dict:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    require(not missing, f"PDF export needs {', '.join(missing)} (apt-get install {APT})")
    work = tmp_path_factory.mktemp("pdf")
    shutil.copyfile(dist / "autograder" / NOTEBOOK, work / NOTEBOOK)  # the reference solution
    shutil.copyfile(dist / "student" / "mnist_exercise.py", work / "mnist_exercise.py")
    shutil.copytree(dist / "student" / "tests", work / "tests")
    env = {"MNIST_NPZ": str(data_file), "MNIST_EPOCHS": "1", "MNIST_TRAIN_IMAGES": "2000"}
    nb = run_like_a_student(work / NOTEBOOK, env)

    export_cell = next(c for c in nb.cells if "grader.export(" in c.source)
    zips = list(work.glob("*.zip"))
    assert len(zips) == 1, f"the export cell made {len(zips)} zip files"
    with zipfile.ZipFile(zips[0]) as archive:
        assert PDF in archive.namelist(), f"no PDF in the submission zip: {archive.namelist()}"
        (work / "from_zip.pdf").write_bytes(archive.read(PDF))
    pdf = work / "from_zip.pdf"
    text = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    pages = [re.sub(r"\n\s*\d+\s*$", "", page.strip()) for page in text.split("\f")[:-1]]
    return {"work": work, "nb": nb, "pdf": pdf, "pages": pages, "export_cell": export_cell}


def pictures(pdf: Path) -> list[dict]:
    """`pdfimages -list`, one row per picture (soft masks left out), pages counted from 1."""
    listing = subprocess.run(
        ["pdfimages", "-list", str(pdf)], capture_output=True, text=True, check=True
    ).stdout.splitlines()[2:]
    rows = [line.split() for line in listing]
    return [
        {"page": int(row[0]), "number": int(row[1]), "width": int(row[3]), "height": int(row[4])}
        for row in rows
        if row[2] == "image"
    ]


def heading_pages(pages: list[str]) -> dict[str, int]:
    """Exported question -> index of the page its heading starts (the heading opens the page)."""
    found = {}
    for name in EXPORTED:
        heading = words(QUESTIONS[name]["heading"])
        hits = [
            i for i, page in enumerate(pages) if contains(words(page)[: len(heading) + 3], heading)
        ]
        assert hits, f"{name}: its heading {QUESTIONS[name]['heading']!r} does not open a page"
        found[name] = hits[0]
    return found


def test_export_cell_did_not_run_the_tests(exported):
    shown = "".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
        for output in exported["export_cell"].outputs
    )
    assert "Running your submission against local test cases" not in shown


def test_each_exported_question_starts_a_page_in_order(exported):
    starts = heading_pages(exported["pages"])
    order = [starts[name] for name in EXPORTED]
    assert order == sorted(set(order)), f"questions share a page or are out of order: {starts}"


@pytest.mark.parametrize("name", WRITTEN)
def test_written_answer_is_in_the_pdf(exported, name):
    pages = exported["pages"]
    starts = heading_pages(pages)
    later = [starts[other] for other in EXPORTED if starts[other] > starts[name]]
    section = words("\n".join(pages[starts[name] : min(later, default=len(pages))]))
    answer = words(QUESTIONS[name]["answer"])
    assert contains(section, answer), (
        f"{name}: the model answer is not on its pages.\nexpected: {' '.join(answer)}\n"
        f"pages {starts[name] + 1}...: {' '.join(section)}"
    )


def test_other_questions_are_left_out(exported):
    everything = words("\n".join(exported["pages"]))
    for name in LEFT_OUT:
        assert not contains(everything, words(QUESTIONS[name]["heading"])), f"{name} is in the PDF"


def test_question_6_plot_is_the_one_picture(exported):
    """The picture is the notebook's plot, pixel for pixel, on Question 6's pages; the figures the
    checks draw (grader.check("q6")) must not show up as well."""
    pdf, nb = exported["pdf"], exported["nb"]
    plot_cell = next(
        c for c in nb.cells if c.cell_type == "code" and "plot_prediction(x_test" in c.source
    )
    plots = [o.data["image/png"] for o in plot_cell.outputs if "image/png" in o.get("data", {})]
    assert len(plots) == 1, "the provided Question 6 cell should draw one figure"

    found = pictures(pdf)
    assert len(found) == 1, f"expected only the Question 6 plot in the PDF, found {found}"
    picture = found[0]
    assert picture["page"] - 1 >= heading_pages(exported["pages"])["q6"]

    prefix = exported["work"] / "picture"
    subprocess.run(
        [
            "pdfimages",
            "-png",
            "-f",
            str(picture["page"]),
            "-l",
            str(picture["page"]),
            str(pdf),
            str(prefix),
        ],
        check=True,
    )
    in_pdf = Image.open(f"{prefix}-000.png").convert("RGB")
    in_notebook = Image.open(io.BytesIO(base64.b64decode(plots[0]))).convert("RGB")
    assert in_pdf.size == in_notebook.size
    assert np.array_equal(np.asarray(in_pdf), np.asarray(in_notebook))
