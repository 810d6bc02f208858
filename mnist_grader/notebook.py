"""Reading a submission: a .ipynb (or the zip otter's export cell makes) -> its code cells.

Only the code cells' source is used. The kernelspec the file names is ignored (the grader always
runs its own kernel), and so are outputs. Cells that only talk to otter (`grader.check(...)`,
`grader = otter.Notebook(...)`, `import otter`) or export the PDF (`answers_pdf.export(grader)`)
are skipped: the grader runs the checks itself. Lines that install packages (`%pip install`,
`!pip install`, as in the notebook's first cell) become `pass`: the grader has what the exercise
needs, and pip in every sandboxed kernel would cost each submission its time (and fail offline).
"""

from __future__ import annotations

import ast
import io
import re
import stat
import zipfile
import zlib
from pathlib import Path

MAX_NOTEBOOK_BYTES = 20 * 2**20
SKIPPED_NAMES = {"otter", "grader", "answers_pdf"}  # otter's cells and the export cell
INSTALL_LINE = re.compile(r"^([ \t]*)[%!][ \t]*(pip3?|conda|mamba)[ \t]+install\b.*$", re.MULTILINE)


class UnreadableSubmission(Exception):
    """The file is not a notebook the grader can run; the text says why, for the student."""


def refused_unread(path: Path) -> str:
    """Why the file is refused before a byte of it is read (it cannot be opened, is a link or
    a special file, is empty or over the limit), or "" when it is not."""
    try:
        info = path.lstat()  # not stat: a link could point at any file the grader may read
    except OSError as error:
        return f"the file could not be opened ({error.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return "the upload is a link or a special file, not a notebook file"
    if info.st_size == 0:
        return "the file is empty"
    if info.st_size > MAX_NOTEBOOK_BYTES:
        return too_large(info.st_size)
    return ""


def too_large(size: int) -> str:
    return (
        f"the file is {size / 2**20:.0f} MB; notebooks up to "
        f"{MAX_NOTEBOOK_BYTES // 2**20} MB are accepted (clear the outputs and save again)"
    )


def _notebook_bytes(path: Path) -> bytes:
    problem = refused_unread(path)
    if problem:
        raise UnreadableSubmission(problem)
    data = path.read_bytes()
    if zipfile.is_zipfile(io.BytesIO(data)):
        try:
            return _notebook_in_zip(data)
        except UnicodeDecodeError:  # a name flagged UTF-8 in the zip that is not
            raise UnreadableSubmission(
                "the zip is damaged (a file name in it is not UTF-8)"
            ) from None
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
            raise UnreadableSubmission(f"the zip is damaged ({type(error).__name__})") from None
    return data


def _notebook_in_zip(data: bytes) -> bytes:
    """The one notebook in a zip (what otter's export cell makes), read at most to the limit."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = [
            n
            for n in archive.namelist()
            if n.endswith(".ipynb") and "/." not in "/" + n and "checkpoint" not in n
        ]
        if len(names) != 1:
            raise UnreadableSubmission(
                f"the zip should hold exactly one notebook; it holds {len(names)}"
            )
        with archive.open(names[0]) as member:  # its stated size may lie: read to the limit
            data = member.read(MAX_NOTEBOOK_BYTES + 1)
        if len(data) > MAX_NOTEBOOK_BYTES:
            raise UnreadableSubmission("the notebook inside the zip is too large")
        return data


def read_code_cells(path: Path) -> list[tuple[int, str]]:
    """[(the cell's position among all the notebook's cells, from 1; source)] of the code cells,
    skipping otter's own cells."""
    data = _notebook_bytes(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UnreadableSubmission("the file is not UTF-8 text, so it is not a notebook") from None
    import nbformat  # here, not above: the batch parent imports this module and needs no nbformat

    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as error:  # nbformat raises several kinds for broken JSON
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise UnreadableSubmission(
            f"the file is not a valid notebook (it may be cut short or damaged): {reason}"
        ) from None
    cells = nb.get("cells")
    if not isinstance(cells, list):
        raise UnreadableSubmission("the notebook has no cells")
    sources = []
    for position, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        sources.append((position, INSTALL_LINE.sub(r"\1pass", source)))
    if not sources:
        raise UnreadableSubmission("the notebook has no code cells")
    return [(index, source) for index, source in sources if not _only_talks_to_otter(source)]


def _only_talks_to_otter(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):  # ValueError: a null byte in the source
        return False
    if not tree.body:
        return False
    for statement in tree.body:
        names = {node.id for node in ast.walk(statement) if isinstance(node, ast.Name)}
        if isinstance(statement, ast.Import):
            names = {alias.name for alias in statement.names}
        if not names or not names <= SKIPPED_NAMES:
            return False
    return True


def cell_label(position: int, source: str) -> str:
    """A code cell named as the student sees it: by the functions it defines, else its first
    line, and its position counting every cell from the top (Jupyter shows no cell numbers)."""
    try:
        tree = ast.parse(source)
        functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    except (SyntaxError, ValueError):
        functions = re.findall(r"^def (\w+)", source, re.MULTILINE)
    where = f"cell {position} from the top"
    if functions:
        return f"the cell defining {' and '.join(functions)} ({where})"
    lines = [line.strip() for line in source.splitlines()]
    first = next((line for line in lines if line and not line.startswith("#")), "")
    if len(first) > 60:
        first = first[:57] + "..."
    return f"the cell `{first}` ({where})" if first else f"an empty cell ({where})"
