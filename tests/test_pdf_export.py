"""The PDF for the hand-graded Gradescope assignment, made by the notebook's own export cell.

The reference solution, built now from the master by otter assign, is run the way a student runs
it (every cell from the top, File > Save, then the export cell). The PDF in the zip that cell makes
must hold the written answers to the manual questions (1-3) and the plot of Question 6
(`export: true`), each question starting on a new page, and none of the other questions. The
expected answers and headings are read from the master, not copied here. Here pandoc and XeLaTeX
are installed, so the export cell makes it with otter's export; tests/test_pdf_without_latex.py
makes it where they are not (and on Colab) and reuses the helpers below.

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
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from PIL import Image

from tests.conftest import require

ROOT = Path(__file__).resolve().parent.parent
MASTER = ROOT / "autograder" / "master" / "mnist_first_steps.ipynb"
NOTEBOOK = MASTER.name
PDF = Path(NOTEBOOK).with_suffix(".pdf").name
TOOLS = ("pandoc", "xelatex", "pdftotext", "pdfimages")
EXPORT_CALL = "answers_pdf.export(grader)"
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


def test_export_cell_is_the_last_cell_and_exports(dist):
    """The notebook's own export cell (otter's, which needs LaTeX, is turned off): last, locked."""
    cells = nbformat.read(dist / "student" / NOTEBOOK, 4).cells
    exporting = [c for c in cells if "export(" in c.source]
    assert exporting == [cells[-1]], "one export cell, the last"
    assert cells[-1].source.splitlines()[-1] == EXPORT_CALL
    assert cells[-1].metadata.get("editable") is False
    headings = [line for c in cells if c.cell_type == "markdown" for line in c.source.splitlines()]
    assert "## Submit" in headings and "## Submission" not in headings, "one Submit section"


# ---------------------------------------------------------------------------------------------
# The PDF: run the solution as a student would, export, read it back
# ---------------------------------------------------------------------------------------------


def student_folder(dist: Path, work: Path, notebook: Path) -> Path:
    """What a student has: the handed-out files (support modules, requirements.txt, tests/), with
    `notebook` (e.g. the reference solution) as theirs."""
    shutil.copytree(dist / "student", work, dirs_exist_ok=True)
    shutil.copyfile(notebook, work / NOTEBOOK)
    return work / NOTEBOOK


def run_like_a_student(
    notebook: Path, env: dict[str, str], save=None, startup: str = "", nb=None
) -> nbformat.NotebookNode:
    """Run every cell of `notebook` (or of `nb`, in `notebook`'s folder) in order; save it (with
    outputs) just before the export cell, which exports the saved file, as a student does with
    File > Save (or call `save(nb)` instead). `startup` runs first, as a kernel's own start-up."""
    nb = nb or nbformat.read(notebook, as_version=4)
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
            if startup:
                reply = run_sync(client.kc.execute_interactive)(startup, timeout=60)
                assert reply["content"]["status"] == "ok", reply["content"]
            for index, cell in enumerate(nb.cells):
                if EXPORT_CALL in cell.source:
                    (save or (lambda nb: nbformat.write(nb, notebook)))(nb)
                client.execute_cell(cell, index)
    return nb


def read_back(pdf: Path) -> list[str]:
    """The text of each page (its page number left out)."""
    text = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    return [re.sub(r"\n\s*\d+\s*$", "", page.strip()) for page in text.split("\f")[:-1]]


def shown(cell) -> str:
    """What a cell printed (stream text and plain-text results)."""
    return "".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
        for output in cell.outputs
    )


@pytest.fixture(scope="module")
def exported(dist, data_file, tmp_path_factory) -> dict:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    require(not missing, f"PDF export needs {', '.join(missing)} (apt-get install {APT})")
    work = tmp_path_factory.mktemp("pdf")
    notebook = student_folder(dist, work, dist / "autograder" / NOTEBOOK)  # the reference
    env = {"MNIST_NPZ": str(data_file), "MNIST_EPOCHS": "1", "MNIST_TRAIN_IMAGES": "2000"}
    nb = run_like_a_student(notebook, env)

    export_cell = next(c for c in nb.cells if EXPORT_CALL in c.source)
    zips = list(work.glob("*.zip"))
    assert len(zips) == 1, f"the export cell made {len(zips)} zip files"
    with zipfile.ZipFile(zips[0]) as archive:
        assert PDF in archive.namelist(), f"no PDF in the submission zip: {archive.namelist()}"
        (work / "from_zip.pdf").write_bytes(archive.read(PDF))
    pdf = work / "from_zip.pdf"
    pages = read_back(pdf)
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
    assert "Running your submission against local test cases" not in shown(exported["export_cell"])


def test_export_cell_says_it_used_latex(exported):
    assert "with pandoc and XeLaTeX" in shown(exported["export_cell"])


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
    found = pictures(exported["pdf"])
    assert len(found) == 1, f"expected only the Question 6 plot in the PDF, found {found}"
    assert_plot_is_on_its_page(exported, found[0])


def notebook_plot(nb) -> bytes:
    """The PNG that the provided Question 6 cell drew in the notebook."""
    plot_cell = next(
        c for c in nb.cells if c.cell_type == "code" and "plot_prediction(x_test" in c.source
    )
    plots = [o.data["image/png"] for o in plot_cell.outputs if "image/png" in o.get("data", {})]
    assert len(plots) == 1, "the provided Question 6 cell should draw one figure"
    return base64.b64decode(plots[0])


def picture_pixels(pdf: Path, picture: dict, prefix: Path) -> np.ndarray:
    """One picture of `pictures(pdf)`, as pdfimages extracts it (RGB)."""
    page = picture["page"]
    listing = subprocess.run(
        ["pdfimages", "-list", str(pdf)], capture_output=True, text=True, check=True
    ).stdout.splitlines()[2:]
    first = min(int(row.split()[1]) for row in listing if int(row.split()[0]) == page)
    subprocess.run(
        ["pdfimages", "-png", "-f", str(page), "-l", str(page), str(pdf), str(prefix)], check=True
    )
    extracted = Image.open(f"{prefix}-{picture['number'] - first:03d}.png")
    return np.asarray(extracted.convert("RGB"))


def assert_plot_is_on_its_page(exported: dict, picture: dict) -> None:
    assert picture["page"] - 1 >= heading_pages(exported["pages"])["q6"]
    in_pdf = picture_pixels(exported["pdf"], picture, exported["work"] / "picture")
    in_notebook = np.asarray(Image.open(io.BytesIO(notebook_plot(exported["nb"]))).convert("RGB"))
    assert in_pdf.shape == in_notebook.shape
    assert np.array_equal(in_pdf, in_notebook)
