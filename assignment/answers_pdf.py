"""The PDF of the written answers, for the hand-graded Gradescope assignment: the export cell.

`export(grader)` makes `<notebook>.pdf` and a zip of the notebook and the PDF. Where pandoc and
XeLaTeX work, otter's export makes the PDF, as before. Where they are missing (most laptops,
Colab), fail on the student's text, or lack a font for some of its characters (Greek, Cyrillic,
CJK, most maths symbols: XeLaTeX drops those silently), the same pages are made here in pure
Python with fpdf2: a title page, then each question the notebook marks for export (between
`<!-- BEGIN QUESTION -->` and `<!-- END QUESTION -->`, as otter reads them) from a new page, with
its prompt and then the student's answer rendered from Markdown, or the figures its code cells
drew (Question 6's plot). Fonts: DejaVu, which matplotlib ships (so it is wherever the notebook
runs), then any font of the system that has a missing character, then matplotlib's Last Resort
font, which draws any character left as a visible box naming its script: never an exception.

On Colab the notebook is not a file the kernel can read (Colab keeps it), so it is asked for
through Colab's own front-end request, and otter's export (which refuses to run there) is not used.

Kept apart from mnist_exercise.py, which the grader imports: grading never needs any of this.
"""

from __future__ import annotations

import base64
import binascii
import html
import io
import json
import re
import shutil
import sys
import zipfile
from datetime import datetime
from pathlib import Path

NOTEBOOK = "mnist_first_steps.ipynb"
PLACEHOLDER = "_Type your answer here, replacing this text._"  # otter's answer cells
BEGIN, END = "<!-- BEGIN QUESTION -->", "<!-- END QUESTION -->"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif")
PIXELS_PER_INCH = 96  # how large a picture is drawn (then shrunk to the page's width)
MAX_IMAGE_PIXELS = 40_000_000
# What XeLaTeX's default fonts (otter's template) were seen to print: Latin, its punctuation and
# a few signs. Anything else (σ, ж, ≤, 中, emoji) vanishes from its PDF without an error, so it
# goes the fpdf2 way instead.
LATEX_SAFE = re.compile(r"[\t\n\r\x20-\x7e\xa0-\u017f\u2010-\u2027€™→√∞½²Ω]*")
# Fonts with wide coverage that systems commonly have, tried for characters DejaVu lacks.
SYSTEM_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansSymbols2-Regular.ttf",
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/Hiragino Sans GB.ttc",
    "/System/Library/Fonts/AppleSDGothicNeo.ttc",
    "/Library/Fonts/Arial Unicode.ttf",
    "/System/Library/Fonts/Supplemental/Arial Unicode.ttf",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/meiryo.ttc",
    "C:/Windows/Fonts/malgun.ttf",
    "C:/Windows/Fonts/seguisym.ttf",
    "C:/Windows/Fonts/seguiemj.ttf",
)


class ExportError(RuntimeError):
    """Why no PDF could be made; the text says what to do."""


# ---------------------------------------------------------------------------------------------
# The export cell
# ---------------------------------------------------------------------------------------------


def on_colab() -> bool:
    """Colab's kernel imports google.colab as it starts (the install cell asks the same)."""
    return "google.colab" in sys.modules


def export(grader=None, notebook: str = NOTEBOOK) -> Path:
    """Make `<notebook>.pdf` and a zip of the notebook and the PDF; say how, and return the PDF."""
    path = Path(notebook)
    pdf = path.with_suffix(".pdf")
    colab = on_colab()
    nb = colab_notebook() if colab else None
    if nb is None:
        nb = read_saved(path)
    pdf.unlink(missing_ok=True)  # never hand in an earlier run's PDF
    reason = "on Colab" if colab else latex_pdf(path, nb, pdf)
    if reason is None:
        how = "with pandoc and XeLaTeX (otter export)"
    else:
        pages = build_pdf(nb, pdf, title=path.name, note=f"Made without LaTeX: {reason}.")
        how = f"without LaTeX ({reason}), with fpdf2: {pages} pages"
    print(f"Made {pdf} {how}.")
    if grader is not None and not colab:
        grader.export(str(path), pdf=False, files=[str(pdf)], run_tests=False)
        archive = None
    else:
        archive = write_zip(path, nb, pdf)
        print(f"Made {archive}: the notebook and the PDF.")
    print(
        f"Upload {path.name} (or the zip) to the Gradescope code assignment and {pdf.name} to the "
        "written one."
    )
    if colab:
        offer_downloads([pdf, archive])
    return pdf


def colab_notebook():
    """The notebook as Colab's editor holds it now (saved or not), or None if Colab won't say."""
    import nbformat

    try:
        from google.colab import _message

        reply = _message.blocking_request("get_ipynb", request="", timeout_sec=60)
        # through JSON text, as a saved file is read: nbformat joins the lines of each source
        return nbformat.reads(json.dumps(reply["ipynb"]), as_version=4)
    except Exception as error:  # an older or newer Colab: the saved file is the next best
        print(f"Colab did not hand over the notebook ({error}); using the saved file.")
        return None


def offer_downloads(paths) -> None:
    try:
        from google.colab import files

        for path in paths:
            files.download(str(path))
    except Exception:  # a browser that refuses: the files panel still has them
        print("Download them from the Files panel on the left.")


def read_saved(path: Path):
    """The saved notebook; an ExportError that says what to do when it can't be the right one."""
    import nbformat

    save = "Save the notebook (File > Save), then run this cell again."
    if not path.is_file():
        raise ExportError(
            f"There is no {path.name} in {Path.cwd()}. Save the notebook under that name, beside "
            f"mnist_exercise.py, then run this cell again."
        )
    try:
        nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    except Exception as error:
        raise ExportError(f"{path.name} could not be read ({error}). {save}") from None
    ran = [c for c in nb.cells if c.cell_type == "code" and c.get("execution_count")]
    if not ran and _cells_run_in_this_kernel() > 0:
        raise ExportError(
            f"The saved {path.name} has none of the outputs of the cells you ran: it was saved "
            f"before you ran them, and this cell exports the saved file. {save}"
        )
    return nb


def _cells_run_in_this_kernel() -> int:
    """How many cells ran before this one (0 outside IPython)."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return max(0, int(getattr(shell, "execution_count", 1)) - 1) if shell else 0


def write_zip(path: Path, nb, pdf: Path) -> Path:
    import nbformat

    stamp = datetime.now().strftime("%Y_%m_%dT%H_%M_%S")
    archive = path.with_name(f"{path.stem}_{stamp}.zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(path.name, nbformat.writes(nb))
        zf.write(pdf, pdf.name)
    return archive


# ---------------------------------------------------------------------------------------------
# The LaTeX way (otter's export)
# ---------------------------------------------------------------------------------------------


def latex_pdf(path: Path, nb, pdf: Path) -> str | None:
    """Make the PDF with otter's export; None when done, else why not (for the cell's output)."""
    missing = [tool for tool in ("pandoc", "xelatex") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed here"
    unprintable = sorted(
        {
            char
            for question in questions(nb)
            for text in question.texts()
            for char in "".join(LATEX_SAFE.split(text))
        }
    )
    if unprintable:
        shown = " ".join(unprintable[:8])
        return f"the text has characters the LaTeX fonts lack: {shown}"
    try:
        from otter.export import export_notebook

        export_notebook(str(path), dest=str(pdf), filtering=True, pagebreaks=True)
    except Exception as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        first = next((line for line in lines if line.startswith("!")), lines[0] if lines else "")
        return f"LaTeX failed on the notebook's text: {first[:160] or type(error).__name__}"
    return None if pdf.is_file() else "otter's export made no PDF"


# ---------------------------------------------------------------------------------------------
# The questions the notebook marks for export
# ---------------------------------------------------------------------------------------------


class Question:
    """One exported region: its cells, cut to the part between the markers."""

    def __init__(self):
        self.parts: list[tuple[object, str]] = []  # (cell, its text inside the region)

    @property
    def prompt(self) -> str:
        return next((text for cell, text in self.parts if cell.cell_type == "markdown"), "")

    @property
    def title(self) -> str:
        for line in self.prompt.splitlines():
            if line.strip():
                return line.strip().lstrip("#").strip()
        return "Question"

    def answers(self) -> list[tuple[object, str]]:
        """The markdown after the prompt, placeholders taken out (empty when unanswered)."""
        found, seen_prompt = [], False
        for cell, text in self.parts:
            if cell.cell_type != "markdown":
                continue
            if not seen_prompt:
                seen_prompt = True
                continue
            text = text.replace(PLACEHOLDER, "").replace(PLACEHOLDER.strip("_"), "")
            if text.strip():
                found.append((cell, text))
        return found

    def code_cells(self) -> list:
        return [cell for cell, _ in self.parts if cell.cell_type == "code"]

    def figures(self) -> list[bytes]:
        pictures = []
        for cell in self.code_cells():
            for output in cell.get("outputs", []):
                data = output.get("data", {}) if isinstance(output, dict) else {}
                kind = next((k for k in IMAGE_TYPES if k in data), None)
                if kind:
                    payload = data[kind]
                    payload = "".join(payload) if isinstance(payload, list) else str(payload)
                    try:
                        pictures.append(base64.b64decode(payload))
                    except (binascii.Error, ValueError):
                        continue
        return pictures

    def texts(self) -> list[str]:
        found = [text for _, text in self.parts]
        for cell in self.code_cells():
            for output in cell.get("outputs", []):
                if isinstance(output, dict) and isinstance(output.get("text"), str):
                    found.append(output["text"])
        return found


def questions(nb) -> list[Question]:
    """The regions between BEGIN/END QUESTION comments, line by line as otter's filter reads."""
    found, current = [], None
    for cell in nb.cells:
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        kept: list[str] = []
        for line in source.split("\n"):
            if current is None and BEGIN in line:
                current = Question()
                found.append(current)
                kept = []
            elif current is not None and END in line:
                if kept:
                    current.parts.append((cell, "\n".join(kept)))
                current, kept = None, []
            elif current is not None:
                kept.append(line)
        if current is not None and (kept or cell.cell_type == "code"):
            current.parts.append((cell, "\n".join(kept)))
    return found


# ---------------------------------------------------------------------------------------------
# The fpdf2 way
# ---------------------------------------------------------------------------------------------


def build_pdf(nb, target: Path, title: str = NOTEBOOK, note: str = "") -> int:
    """Write the PDF of the exported questions to `target`; return its number of pages.

    A question whose Markdown the HTML layout cannot take (an odd table, say) is drawn again as
    plain text, so that one answer can never cost the whole PDF.
    """
    plain: set[int] = set()
    found = questions(nb)
    while True:
        try:
            document = _Document(nb, found, title, note, plain)
            document.output(str(target))
            return document.pages_count
        except _QuestionFailed as failed:
            if failed.index in plain:
                raise failed.__cause__ from None
            plain.add(failed.index)


class _QuestionFailed(Exception):
    def __init__(self, index: int):
        self.index = index


def _clean(text: str) -> str:
    """Control characters and lone surrogates (valid in a notebook's JSON) -> U+FFFD."""
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]", "\ufffd", text)


def _fonts_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _document_class():
    from fpdf import FPDF

    class Document(FPDF):
        running_title = ""
        question_page = 0

        def header(self):
            if self.running_title and self.page_no() > self.question_page:
                self.set_font("DejaVu", "I", 8)
                self.set_text_color(110)
                self.cell(0, 5, f"{self.running_title} (continued)")
                self.ln(8)
                self.set_text_color(0)

        def footer(self):
            self.set_y(-12)
            self.set_font("DejaVu", "", 8)
            self.set_text_color(110)
            self.cell(0, 5, str(self.page_no()), align="C")
            self.set_text_color(0)

    return Document


class _Document:
    """One fpdf2 document of the title page and the questions."""

    def __init__(self, nb, found: list[Question], title: str, note: str, plain: set[int]):
        from fpdf import FontFace, TextStyle

        self.nb = nb
        self.starts: list[tuple[str, int]] = []  # (question, its first page)
        self.pdf = pdf = _document_class()(format="letter")
        pdf.set_margins(20, 16, 20)
        pdf.set_auto_page_break(True, margin=18)
        pdf.set_title(title)
        fonts = _fonts_dir()
        for style, suffix in (("", ""), ("B", "-Bold"), ("I", "-Oblique"), ("BI", "-BoldOblique")):
            pdf.add_font("DejaVu", style, fonts / f"DejaVuSans{suffix}.ttf")
            pdf.add_font("DejaVuMono", style, fonts / f"DejaVuSansMono{suffix}.ttf")
        self._add_fallback_fonts(found, title)
        grey = "#444444"
        self.styles = {
            "code": FontFace(family="DejaVuMono", size_pt=9.5),
            "pre": TextStyle(font_family="DejaVuMono", font_size_pt=9.5, t_margin=2, b_margin=2),
            "a": FontFace(color="#1a4fa0", emphasis="UNDERLINE"),
            "blockquote": TextStyle(color=grey, t_margin=2, b_margin=2, l_margin=8),
            "h1": TextStyle(font_size_pt=17, font_style="B", color=0, t_margin=2, b_margin=2),
            "h2": TextStyle(font_size_pt=15, font_style="B", color=0, t_margin=1, b_margin=2),
            "h3": TextStyle(font_size_pt=13, font_style="B", color=0, t_margin=3, b_margin=1),
            "h4": TextStyle(font_size_pt=12, font_style="B", color=0, t_margin=3, b_margin=1),
            "h5": TextStyle(font_size_pt=11, font_style="B", color=0, t_margin=2, b_margin=1),
            "h6": TextStyle(font_size_pt=11, font_style="BI", color=0, t_margin=2, b_margin=1),
        }
        self._title_page(found, title, note)
        for index, question in enumerate(found):
            try:
                self._question(question, index in plain)
            except Exception as error:
                raise _QuestionFailed(index) from error

    @property
    def pages_count(self) -> int:
        return self.pdf.pages_count

    def output(self, target: str) -> None:
        self.pdf.output(target)

    # fonts ------------------------------------------------------------------------------------

    def _add_fallback_fonts(self, found: list[Question], title: str) -> None:
        """Fonts for the characters DejaVu lacks: the system's, then Last Resort's boxes."""
        pdf = self.pdf
        text = title + "".join(t for q in found for t in q.texts())
        covered = set(pdf.fonts["dejavu"].cmap) & set(pdf.fonts["dejavumono"].cmap)
        missing = {ord(c) for c in set(_clean(text))} - covered - {9, 10, 13}
        fallbacks = []
        for number, candidate in enumerate(SYSTEM_FONTS):
            if not missing:
                break
            if not Path(candidate).is_file():
                continue
            name = f"system{number}"
            try:
                pdf.add_font(name, "", candidate)
            except Exception:  # a font fpdf2 can't read: try the next
                continue
            if missing & set(pdf.fonts[name].cmap):
                fallbacks.append(name)
                missing -= set(pdf.fonts[name].cmap)
        if missing:  # its glyphs are boxes that name the script: visible, never an error
            pdf.add_font("LastResort", "", _fonts_dir() / "LastResortHE-Regular.ttf")
            fallbacks.append("LastResort")
        if fallbacks:
            pdf.set_fallback_fonts(fallbacks, exact_match=False)

    # pages ------------------------------------------------------------------------------------

    def _title_page(self, found: list[Question], title: str, note: str) -> None:
        pdf = self.pdf
        pdf.add_page()
        heading = next(
            (
                line.lstrip("#").strip()
                for cell in self.nb.cells
                if cell.cell_type == "markdown"
                for line in str(cell.source).splitlines()
                if line.startswith("# ")
            ),
            "",
        )
        line = {"new_x": "LMARGIN", "new_y": "NEXT"}
        pdf.set_y(45)
        pdf.set_font("DejaVu", "B", 18)
        pdf.multi_cell(0, 9, _clean(heading or title), align="C", **line)
        pdf.ln(4)
        pdf.set_font("DejaVu", "", 12)
        now = datetime.now().astimezone()
        for text in (title, f"Exported {now:%Y-%m-%d %H:%M} (UTC{now:%z})"):
            pdf.multi_cell(0, 7, _clean(text), align="C", **line)
        if note:
            pdf.ln(4)
            pdf.set_font("DejaVu", "I", 9)
            pdf.set_text_color(90)
            pdf.multi_cell(0, 5, _clean(note), align="C", **line)
            pdf.set_text_color(0)
        pdf.ln(12)
        pdf.set_font("DejaVu", "B", 12)
        pdf.cell(0, 7, "Questions", **line)
        starts = self.starts

        def contents(pdf, _sections):  # drawn at the end, when the pages are known
            pdf.set_font("DejaVu", "", 11)
            for name, page in starts:
                pdf.set_x(pdf.l_margin)
                pdf.multi_cell(0, 6, f"{name}: page {page}", **line)

        pdf.insert_toc_placeholder(contents, pages=1, reset_page_indices=False)

    def _question(self, question: Question, plain: bool) -> None:
        pdf = self.pdf
        pdf.running_title = ""
        if pdf.get_y() > pdf.t_margin + 1:  # the title page's list already broke the page
            pdf.add_page()
        pdf.running_title = _clean(question.title)
        pdf.question_page = pdf.page_no()
        self.starts.append((pdf.running_title, pdf.page_no()))
        self._markdown(question.prompt, None, plain)
        pdf.ln(2)
        pdf.set_draw_color(160)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
        pdf.ln(4)
        answers = question.answers()
        if question.code_cells():
            figures = question.figures()
            for picture in figures:
                self._picture(picture)
            if not figures:
                self._unanswered(
                    "No figure: the saved notebook has no plot in this question's cells. Run "
                    "them, save, and export again."
                )
        elif not answers:
            self._unanswered(
                "Unanswered: the answer cell was left as it was handed out, emptied, or deleted."
            )
        for cell, text in answers:
            self._markdown(text, cell, plain)

    def _unanswered(self, text: str) -> None:
        pdf = self.pdf
        pdf.set_font("DejaVu", "B", 11)
        pdf.set_fill_color(235)
        pdf.multi_cell(0, 8, text, fill=True, padding=2, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)

    def _picture(self, data: bytes) -> None:
        from PIL import Image

        pdf = self.pdf
        width_px, _ = Image.open(io.BytesIO(data)).size
        width = min(pdf.epw, width_px / PIXELS_PER_INCH * 25.4)
        pdf.image(io.BytesIO(data), x=pdf.l_margin + (pdf.epw - width) / 2, w=width)
        pdf.ln(3)

    def _markdown(self, text: str, cell, plain: bool) -> None:
        pdf = self.pdf
        pdf.set_font("DejaVu", "", 11)
        pdf.set_text_color(0)
        if plain:  # what the student typed, as typed
            pdf.multi_cell(0, 5.5, _clean(text), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
            return
        markup, images = _to_html(_clean(text), cell, pdf.epw * 72 / 25.4)
        pdf.write_html(
            markup,
            font_family="DejaVu",
            tag_styles=self.styles,
            li_prefix_color=(0, 0, 0),
            image_map=lambda key: io.BytesIO(images[key]),
            warn_on_tags_not_matching=False,
        )


# ---------------------------------------------------------------------------------------------
# Markdown -> the HTML subset fpdf2 lays out
# ---------------------------------------------------------------------------------------------


def _to_html(text: str, cell, width_pt: float) -> tuple[str, dict]:
    """HTML for fpdf2's write_html, and the pictures its <img> tags name."""
    import mistune

    images: dict[str, bytes] = {}

    class Renderer(mistune.HTMLRenderer):
        def inline_math(self, source):  # legible as typed: $\sigma(x)$ in the code font
            return f"<code>${html.escape(source)}$</code>"

        def block_math(self, source):
            picture = _math_picture(source)
            if picture is None:
                return f"<pre>$$\n{html.escape(source.strip())}\n$$</pre>\n"
            return _img_tag(picture, images, width_pt, scale=0.5) + "\n"

        def image(self, text, url, title=None):
            data, why = _picture_for(url, cell)
            if data is None:
                shown = html.escape(text or url)
                return f"<i>[picture “{shown}” not included: {why}]</i>"
            return _img_tag(data, images, width_pt)

    markdown = mistune.create_markdown(
        renderer=Renderer(escape=True), plugins=["math", "table", "strikethrough"]
    )
    # fpdf2's default line height is the font's size: a little more reads better
    return re.sub(r"<(p|ul|ol)([ >])", r'<\1 line-height="1.3"\2', markdown(text)), images


def _img_tag(data: bytes, images: dict, width_pt: float, scale: float = 1.0) -> str:
    from PIL import Image

    width_px, height_px = Image.open(io.BytesIO(data)).size
    width = width_px / PIXELS_PER_INCH * 72 * scale
    height = height_px / PIXELS_PER_INCH * 72 * scale
    if width > width_pt:
        width, height = width_pt, height * width_pt / width
    key = f"picture{len(images)}"
    images[key] = data
    return f'<br><img src="{key}" width="{width:.1f}" height="{height:.1f}"><br>'


def _picture_for(url: str, cell) -> tuple[bytes | None, str]:
    """A picture an answer shows: pasted into the cell, or a file beside the notebook."""
    data = None
    if url.startswith("attachment:"):
        attached = (cell.get("attachments") or {}).get(url.removeprefix("attachment:"), {})
        kind = next((k for k in IMAGE_TYPES if k in attached), None)
        if kind is None:
            return None, "not a PNG, JPEG or GIF picture pasted into the cell"
        try:
            data = base64.b64decode(attached[kind])
        except (binascii.Error, ValueError, TypeError):
            return None, "its data in the notebook is damaged"
    elif re.match(r"[a-z][a-z0-9+.-]*://", url, re.I):
        return None, "pictures from the web are not fetched; paste it into the cell instead"
    else:
        path = Path(url)
        if not path.is_file():
            return None, f"no file {url} beside the notebook"
        data = path.read_bytes()
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as picture:
            if picture.width * picture.height > MAX_IMAGE_PIXELS:
                return None, "it is too large"
            picture.load()
    except Exception:
        return None, "it is not a picture fpdf2 can read"
    return data, ""


def _math_picture(source: str) -> bytes | None:
    """$$...$$ drawn by matplotlib's mathtext (a TeX subset), or None where it can't."""
    try:
        from matplotlib import mathtext

        buffer = io.BytesIO()
        mathtext.math_to_image(f"${source.strip()}$", buffer, dpi=200, format="png")
        return buffer.getvalue()
    except Exception:
        return None
