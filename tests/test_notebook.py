"""Reading a submission into its code cells, in milliseconds: what is graded, what is skipped, and
every way a file can fail to be a notebook, each with the reason the student reads."""

from __future__ import annotations

import io
import os
import zipfile

import nbformat
import pytest

from mnist_grader import notebook
from mnist_grader.notebook import UnreadableSubmission, read_code_cells


def write_notebook(path, *cells):
    nb = nbformat.v4.new_notebook(cells=list(cells))
    nbformat.write(nb, path)
    return path


def code(source):
    return nbformat.v4.new_code_cell(source)


def markdown(source):
    return nbformat.v4.new_markdown_cell(source)


def test_code_cells_by_their_position_among_all_cells(tmp_path):
    path = write_notebook(
        tmp_path / "a.ipynb",
        markdown("# Title"),
        code("import otter\ngrader = otter.Notebook('a.ipynb')"),
        code("x = 1"),
        markdown("text"),
        code('grader.check("q1")'),
        code("def f():\n    return x"),
        code("import answers_pdf\nanswers_pdf.export(grader)"),
    )
    assert read_code_cells(path) == [(3, "x = 1"), (6, "def f():\n    return x")]


def test_a_cell_mixing_otter_and_student_code_is_run(tmp_path):
    path = write_notebook(tmp_path / "a.ipynb", code('grader.check("q1")\nx = 2'))
    assert read_code_cells(path) == [(1, 'grader.check("q1")\nx = 2')]


def test_the_export_cells_zip_is_read(tmp_path):
    nb = write_notebook(tmp_path / "a.ipynb", code("y = 3"))
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(nb, "mnist_first_steps.ipynb")
        zipped.writestr("mnist_first_steps.pdf", b"%PDF-1.4")
    assert read_code_cells(archive) == [(1, "y = 3")]


def _zip_with(names) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name in names:
            zipped.writestr(name, nbformat.writes(nbformat.v4.new_notebook()))
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "the file is empty"),
        (b'{"cells": [', "not a valid notebook"),
        (b"\xff\xfe\x00 not utf-8", "not UTF-8"),
        (nbformat.writes(nbformat.v4.new_notebook()).encode(), "no code cells"),
        (_zip_with(["a.ipynb", "b.ipynb"]), "exactly one notebook; it holds 2"),
        (_zip_with(["notes.txt"]), "exactly one notebook; it holds 0"),
        (b"PK\x03\x04" + b"\x00" * 60, "damaged"),
    ],
)
def test_what_is_not_a_notebook_says_why(tmp_path, content, reason):
    path = tmp_path / "upload.ipynb"
    path.write_bytes(content)
    with pytest.raises(UnreadableSubmission, match=reason.replace("(", r"\(")):
        read_code_cells(path)


def test_a_link_is_refused_not_followed(tmp_path):
    target = write_notebook(tmp_path / "solution.ipynb", code("x = 1"))
    link = tmp_path / "upload.ipynb"
    os.symlink(target, link)
    with pytest.raises(UnreadableSubmission, match="link"):
        read_code_cells(link)


def test_a_notebook_too_large_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(notebook, "MAX_NOTEBOOK_BYTES", 1000)
    path = write_notebook(tmp_path / "big.ipynb", code("x = '" + "a" * 2000 + "'"))
    with pytest.raises(UnreadableSubmission, match="MB"):
        read_code_cells(path)


def test_a_zip_that_lies_about_its_size_is_read_to_the_limit_only(tmp_path, monkeypatch):
    monkeypatch.setattr(notebook, "MAX_NOTEBOOK_BYTES", 5000)
    big = nbformat.writes(nbformat.v4.new_notebook(cells=[code("x = '" + "a" * 20000 + "'")]))
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("mnist_first_steps.ipynb", big)  # compresses to far below the limit
    assert archive.stat().st_size < 5000
    with pytest.raises(UnreadableSubmission, match="too large"):
        read_code_cells(archive)
