"""The PDF of the written answers where pandoc and XeLaTeX are not (laptops, Colab), read back.

The student flow runs in a real kernel with pandoc and xelatex absent from PATH and `google.colab`
importable, as on Colab: a stub package (tests/colab_stub) that answers Colab's front-end request
for the notebook with what the test's "editor" holds, and records downloads. The reference
solution is run with answers that carry Markdown, non-ASCII text, a long answer and a pasted
picture. Then the PDF is checked as the LaTeX one is (tests/test_pdf_export.py): each exported
question opens a page, every written answer and the plot (pixel for pixel) on its question's
pages, nothing of Questions 4-5. The student's edge cases (untouched notebook, deleted or
placeholder answers, pictures that can't be shown, an export before saving) and LaTeX failing on
the student's text are checked on real notebook files and real PDFs.

Needs poppler-utils (pdftotext, pdfimages, pdffonts); the LaTeX-failure tests also need pandoc
and XeLaTeX.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient.exceptions import CellExecutionError
from PIL import Image

from mnist_grader import MASTER_DIR
from mnist_grader.notebook import read_code_cells
from tests.conftest import require
from tests.test_pdf_export import (
    EXPORT_CALL,
    EXPORTED,
    LEFT_OUT,
    NOTEBOOK,
    PDF,
    QUESTIONS,
    WRITTEN,
    assert_plot_is_on_its_page,
    contains,
    heading_pages,
    notebook_plot,
    picture_pixels,
    pictures,
    read_back,
    run_like_a_student,
    shown,
    student_folder,
    words,
)

pytestmark = pytest.mark.pdf

STUB = Path(__file__).resolve().parent / "colab_stub"
POPPLER = ("pdftotext", "pdfimages", "pdffonts")
NON_ASCII = "café naïve Ωσμ жизнь 中文字 ≤ ≈"
MARKDOWN = "Also **bold**, _emphasis_, `top_class(probs)` and $\\sigma(x)$:\n\n- one\n- two\n"
DISPLAY_MATH = "$$\\sum_{i=0}^{9} p_i = 1$$\n\n$$\\begin{aligned} a &= b \\end{aligned}$$\n"
LONG_SENTENCE = "Each epoch the optimizer lowers the loss a little more on the training batches. "
NO_LATEX_PATH = str(Path(sys.executable).parent)  # python, pip, jupyter: no pandoc, no xelatex
# IPython's %pip runs $SHELL, else "sh" looked up on PATH (which no longer has it). A student's
# session always exports SHELL; CI's may not, so the tests name it as a login would.
LOGIN_SHELL = shutil.which("sh") or "/bin/sh"
NO_LATEX_ENV = {"PATH": NO_LATEX_PATH, "SHELL": LOGIN_SHELL}


def load_answers_pdf():
    spec = importlib.util.spec_from_file_location("answers_pdf", MASTER_DIR / "answers_pdf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


answers_pdf = load_answers_pdf()


def poppler() -> None:
    missing = [tool for tool in POPPLER if shutil.which(tool) is None]
    require(not missing, f"reading PDFs needs {', '.join(missing)} (apt-get install poppler-utils)")


def a_picture() -> bytes:
    """A picture a student might paste into an answer: stripes no other picture has."""
    pixels = np.zeros((90, 240, 3), dtype=np.uint8)
    pixels[:, ::12] = (200, 30, 30)
    pixels[::9, :] = (20, 90, 200)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def answer_cells(nb) -> list[list]:
    """Each written question's markdown cells after its prompt: the answer cell (and in the
    solution, the model answer after it)."""
    return [
        [cell for cell, _ in question.parts if cell.cell_type == "markdown"][1:]
        for question in answers_pdf.questions(nb)
        if not question.code_cells()
    ]


def answers(nb) -> list:
    """The cell holding each written answer (the solution's model answers)."""
    return [cells[-1] for cells in answer_cells(nb)]


def page_of(pages: list[str], name: str) -> list[str]:
    """The pages of exported question `name`: from its heading to the next question's."""
    starts = heading_pages(pages)
    later = [starts[other] for other in EXPORTED if starts[other] > starts[name]]
    return pages[starts[name] : min(later, default=len(pages))]


# ---------------------------------------------------------------------------------------------
# The student flow on "Colab": no LaTeX, google.colab importable, the notebook never saved
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def colab(dist, data_file, tmp_path_factory) -> dict:
    poppler()
    work = tmp_path_factory.mktemp("colab")
    # The files panel holds the handed-out notebook, never saved: Colab keeps the one being edited.
    student_folder(dist, work, dist / "student" / NOTEBOOK)
    nb = nbformat.read(dist / "autograder" / NOTEBOOK, as_version=4)  # the reference solution
    q1, q2, q3 = answers(nb)
    q1.source += f"\n\n{NON_ASCII}\n\n{MARKDOWN}\n{DISPLAY_MATH}"
    q2.source += "\n\n" + LONG_SENTENCE * 120
    q3.source += "\n\n![my diagram](attachment:diagram.png)\n"
    q3["attachments"] = {"diagram.png": {"image/png": base64.b64encode(a_picture()).decode()}}
    editor = work.parent / f"{work.name}-editor.ipynb"  # what Colab's editor holds
    downloads = work.parent / f"{work.name}-downloads.txt"
    env = {
        "MNIST_NPZ": str(data_file),
        "MNIST_EPOCHS": "1",
        "MNIST_TRAIN_IMAGES": "2000",
        **NO_LATEX_ENV,
        "PYTHONPATH": str(STUB),
        "COLAB_STUB_NOTEBOOK": str(editor),
        "COLAB_STUB_DOWNLOADS": str(downloads),
    }
    ran = run_like_a_student(
        work / NOTEBOOK,
        env,
        save=lambda nb: nbformat.write(nb, editor),
        startup="import google.colab",  # Colab's kernel imports it as it starts
        nb=nb,
    )
    export_cell = ran.cells[-1]
    assert EXPORT_CALL in export_cell.source
    zips = list(work.glob("*.zip"))
    assert len(zips) == 1, f"the export cell made {len(zips)} zip files"
    with zipfile.ZipFile(zips[0]) as archive:
        assert sorted(archive.namelist()) == sorted([NOTEBOOK, PDF]), archive.namelist()
        (work / "from_zip.pdf").write_bytes(archive.read(PDF))
        in_zip = nbformat.reads(archive.read(NOTEBOOK).decode(), as_version=4)
    pdf = work / "from_zip.pdf"
    return {
        "work": work,
        "nb": ran,
        "pdf": pdf,
        "pages": read_back(pdf),
        "export_cell": export_cell,
        "zip": zips[0],
        "in_zip": in_zip,
        "downloads": downloads.read_text().split() if downloads.exists() else [],
        "editor": editor,
    }


def test_colab_export_says_how_and_offers_the_files(colab):
    said = shown(colab["export_cell"])
    assert "without LaTeX (on Colab)" in said, said
    assert [Path(p).name for p in colab["downloads"]] == [PDF, colab["zip"].name]


def test_colab_zip_holds_the_edited_notebook_and_grades(colab):
    """The zip's notebook is the one in Colab's editor (answers, outputs), not the stale file;
    the grader reads it, skipping the export cell and the install lines."""
    assert NON_ASCII in "".join(c.source for c in colab["in_zip"].cells)
    assert notebook_plot(colab["in_zip"]) == notebook_plot(colab["nb"])
    cells = [source for _, source in read_code_cells(colab["zip"])]
    assert not [s for s in cells if "answers_pdf" in s or "otter.Notebook" in s]
    install = next(s for s in cells if "google.colab" in s)
    assert "%pip" not in install and "pass" in install


def test_colab_pdf_has_each_question_from_a_new_page_in_order(colab):
    starts = heading_pages(colab["pages"])
    order = [starts[name] for name in EXPORTED]
    assert order == sorted(set(order)), starts
    assert starts[EXPORTED[0]] == 1, "a title page, then the first question"


def test_colab_title_page(colab, dist):
    title = colab["pages"][0]
    first_line = nbformat.read(dist / "student" / NOTEBOOK, 4).cells[0].source.splitlines()[0]
    assert words(title)[:6] == words(first_line)[:6], "the notebook's title opens it"
    assert NOTEBOOK in title and "Exported" in title and "Made without LaTeX" in title
    starts = heading_pages(colab["pages"])
    for name in EXPORTED:
        assert f"{QUESTIONS[name]['heading']}: page {starts[name] + 1}" in title


@pytest.mark.parametrize("name", WRITTEN)
def test_colab_written_answer_is_on_its_pages(colab, name):
    section = words("\n".join(page_of(colab["pages"], name)))
    assert contains(section, words(QUESTIONS[name]["answer"])), name


def test_colab_other_questions_are_left_out(colab):
    everything = words("\n".join(colab["pages"]))
    for name in LEFT_OUT:
        assert not contains(everything, words(QUESTIONS[name]["heading"])), name


def test_colab_non_ascii_and_markdown(colab):
    """Accents, Greek, Cyrillic, CJK and maths signs come back as typed; the characters DejaVu
    lacks (CJK) are drawn by a fallback font (the system's or Last Resort's visible boxes)."""
    text = "\n".join(page_of(colab["pages"], "q1"))
    assert " ".join(text.split()).count(NON_ASCII) == 1, text
    for typed in ("bold", "emphasis", "top_class(probs)", "$\\sigma(x)$", "• one"):
        assert typed in text, typed
    fonts = subprocess.run(
        ["pdffonts", str(colab["pdf"])], capture_output=True, text=True, check=True
    ).stdout
    assert "DejaVuSansBold" in fonts and "DejaVuSansMono" in fonts
    assert [line for line in fonts.splitlines()[2:] if "DejaVu" not in line], fonts


def test_colab_long_answer_runs_onto_further_pages_of_its_question(colab):
    pages = page_of(colab["pages"], "q2")
    assert len(pages) >= 2, "the long answer fits one page: make it longer"
    header = f"{QUESTIONS['q2']['heading']} (continued)\n"
    assert all(page.startswith(header) for page in pages[1:])
    text = "\n".join(page.removeprefix(header) for page in pages)
    assert " ".join(text.split()).count(LONG_SENTENCE.strip()) == 120


def test_colab_display_math_drawn_or_shown_as_typed(colab):
    """$$...$$ that matplotlib's mathtext can draw is a picture; the rest stays as typed."""
    maths = pictures(colab["pdf"])[0]
    assert maths["page"] - 1 == heading_pages(colab["pages"])["q1"]
    assert "\\begin{aligned} a &= b \\end{aligned}" in "\n".join(page_of(colab["pages"], "q1"))


def test_colab_pasted_picture_and_plot_on_their_pages(colab):
    found = pictures(colab["pdf"])
    assert len(found) == 3, f"the maths, the pasted picture and the plot, found {found}"
    _, pasted, plot = found
    starts = heading_pages(colab["pages"])
    assert starts["q3"] <= pasted["page"] - 1 < starts["q6"]
    in_pdf = picture_pixels(colab["pdf"], pasted, colab["work"] / "pasted")
    assert np.array_equal(in_pdf, np.asarray(Image.open(io.BytesIO(a_picture()))))
    assert_plot_is_on_its_page(colab, plot)


# ---------------------------------------------------------------------------------------------
# A laptop without LaTeX (not Colab): otter makes the zip, the PDF is made here
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def in_folder(folder: Path, path: str = NO_LATEX_PATH):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("PATH", path)
        patch.setenv("SHELL", LOGIN_SHELL)
        yield


def test_laptop_without_latex(colab, dist, tmp_path, capsys):
    import otter

    notebook = student_folder(dist, tmp_path, colab["editor"])  # saved, with its outputs
    with in_folder(tmp_path):
        pdf = answers_pdf.export(otter.Notebook(NOTEBOOK))
    said = capsys.readouterr().out
    assert "without LaTeX (pandoc and xelatex not installed here)" in said, said
    zips = list(tmp_path.glob("*.zip"))
    assert len(zips) == 1
    with zipfile.ZipFile(zips[0]) as archive:
        assert {NOTEBOOK, PDF} <= set(archive.namelist())
        assert archive.read(PDF) == (tmp_path / pdf).read_bytes()
    pages = read_back(tmp_path / pdf)
    for name in WRITTEN:
        assert contains(words("\n".join(page_of(pages, name))), words(QUESTIONS[name]["answer"]))
    assert len(pictures(tmp_path / pdf)) == 3
    assert notebook.is_file()


# ---------------------------------------------------------------------------------------------
# A student's edge cases, on real notebook files
# ---------------------------------------------------------------------------------------------


def build(nb, tmp_path) -> list[str]:
    pdf = tmp_path / PDF
    pages = answers_pdf.build_pdf(nb, pdf, title=NOTEBOOK)
    text = read_back(pdf)
    assert len(text) == pages
    return text


def test_untouched_notebook_has_every_page_marked_unanswered(dist, tmp_path):
    poppler()
    pages = build(nbformat.read(dist / "student" / NOTEBOOK, as_version=4), tmp_path)
    assert len(pages) == 1 + len(EXPORTED), "a title page, then one page per question"
    for name in WRITTEN:
        (page,) = page_of(pages, name)
        assert "Unanswered" in page and "Type your answer here" not in page, page
    (plot_page,) = page_of(pages, "q6")
    assert "No figure" in plot_page
    everything = words("\n".join(pages))
    for name in LEFT_OUT:
        assert not contains(everything, words(QUESTIONS[name]["heading"])), name


def test_deleted_emptied_and_placeholder_answers(dist, tmp_path):
    poppler()
    nb = nbformat.read(dist / "autograder" / NOTEBOOK, as_version=4)
    q1, q2, q3 = answer_cells(nb)
    for cell in q1:
        cell.source = answers_pdf.PLACEHOLDER + "\n"
    for cell in q2:
        nb.cells.remove(cell)
    for cell in q3:
        cell.source = " \n"
    pages = build(nb, tmp_path)
    for name in WRITTEN:
        (page,) = page_of(pages, name)
        assert "Unanswered" in page, page
        assert not contains(words(page), words(QUESTIONS[name]["answer"])[:6])


def test_pictures_that_cannot_be_shown_are_named(dist, tmp_path):
    """A picture from the web (no network), a damaged paste and a missing file are named where
    they stand; raw HTML shows as typed; a list nested too deep for the page still comes out."""
    poppler()
    nb = nbformat.read(dist / "student" / NOTEBOOK, as_version=4)
    q1, q2, q3 = answers(nb)
    q1.source = "See ![the web one](https://example.org/cat.png) and <b>this</b>."
    q2.source = "Pasted: ![broken](attachment:broken.png) and ![gone](nowhere.png)."
    q2["attachments"] = {"broken.png": {"image/png": base64.b64encode(b"not a png").decode()}}
    q3.source = "".join("  " * depth + f"- level {depth}\n" for depth in range(60))
    pages = build(nb, tmp_path)
    q1_text = " ".join(" ".join(page_of(pages, "q1")).split())
    assert "the web one" in q1_text and "not included" in q1_text and "<b>this</b>" in q1_text
    q2_text = " ".join(" ".join(page_of(pages, "q2")).split())
    assert q2_text.count("not included") == 2, q2_text
    assert "level 59" in " ".join(" ".join(page_of(pages, "q3")).split())
    assert pictures(tmp_path / PDF) == []


def test_export_before_saving_says_so(dist, tmp_path):
    """Cells ran, but the saved file is the handed-out one: the export stops with what to do."""
    student_folder(dist, tmp_path, dist / "student" / NOTEBOOK)
    nb = nbformat.read(tmp_path / NOTEBOOK, as_version=4)
    init = next(c for c in nb.cells if "otter.Notebook(" in c.source)
    ran = nbformat.v4.new_notebook(cells=[init, nb.cells[-1]], metadata=nb.metadata)
    with pytest.raises(CellExecutionError) as error:
        run_like_a_student(tmp_path / NOTEBOOK, NO_LATEX_ENV, save=print, nb=ran)
    assert "ExportError" in str(error.value) and "Save the notebook (File > Save)" in str(
        error.value
    )
    assert not list(tmp_path.glob("*.pdf")) and not list(tmp_path.glob("*.zip"))


def test_export_without_the_notebook_file_says_so(tmp_path):
    with in_folder(tmp_path), pytest.raises(answers_pdf.ExportError, match="Save the notebook"):
        answers_pdf.export(None)


# ---------------------------------------------------------------------------------------------
# Where LaTeX is installed but can't print the student's text
# ---------------------------------------------------------------------------------------------


def latex() -> None:
    poppler()
    missing = [tool for tool in ("pandoc", "xelatex") if shutil.which(tool) is None]
    require(not missing, f"needs {', '.join(missing)} (apt-get install pandoc texlive-xetex)")


def saved_solution(dist, folder: Path, extra: str) -> Path:
    nb = nbformat.read(dist / "autograder" / NOTEBOOK, as_version=4)
    answers(nb)[0].source += extra
    student_folder(dist, folder, dist / "autograder" / NOTEBOOK)
    nbformat.write(nb, folder / NOTEBOOK)
    return folder / NOTEBOOK


def export_where_latex_is(dist, folder: Path, extra: str, capsys) -> str:
    """The reference solution with `extra` added to its first answer, saved in `folder` and
    exported with pandoc and XeLaTeX on PATH; what the export said."""
    latex()
    saved_solution(dist, folder, extra)
    with in_folder(folder, os.environ["PATH"]):
        answers_pdf.export(None)
    return capsys.readouterr().out


def test_characters_latex_fonts_lack_go_without_latex(dist, tmp_path, capsys):
    """XeLaTeX would drop σ and 中 without an error: the PDF is made without LaTeX instead."""
    said = export_where_latex_is(dist, tmp_path, "\n\nThe sigmoid σ, in Chinese 中文.", capsys)
    assert "the text has characters the LaTeX fonts lack: σ 中 文" in said, said
    assert "σ, in Chinese 中文" in " ".join(read_back(tmp_path / PDF))


def test_latex_failing_on_the_text_goes_without_latex(dist, tmp_path, capsys):
    extra = "\n\nIn maths: $\\notacommand{x}$ and $x^2$."
    said = export_where_latex_is(dist, tmp_path, extra, capsys)
    assert "without LaTeX (LaTeX failed on the notebook's text: ! Undefined control" in said, said
    text = " ".join(" ".join(read_back(tmp_path / PDF)).split())
    assert "In maths: $\\notacommand{x}$ and $x^2$." in text
    assert json.loads((tmp_path / NOTEBOOK).read_text())  # the notebook is left as it was
