"""Gradescope's "Export Submissions" as grading input: who submitted what.

The export (a zip, or the folder it unpacks to, possibly inside one `assignment_<id>_export/`):

    submission_metadata.yml     folder name -> {":submitters": [{":name", ":sid", ":email"}], ...}
    submission_<id>/            the files of one submission (the notebook, the PDF, ...)

`read_export` turns it into one `Entry` per submission: the notebook to grade (chosen as on
Gradescope: the assignment's notebook name first, then any notebook or zip), and its submitters.
What does not fit becomes an entry saying so, never a lost submission: a folder without a
notebook, a name in the metadata without a folder, a folder the metadata does not name (graded,
no identity), no metadata at all (graded, no identities), a file damaged inside the zip.
"""

from __future__ import annotations

import re
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from . import inert
from .notebook import MAX_NOTEBOOK_BYTES, too_large
from .settings import Status

METADATA_NAME = "submission_metadata.yml"
SUBMISSION_FOLDER = re.compile(r"submission_\d+")
GRADABLE_SUFFIXES = (".ipynb", ".zip")
# What unpacking an export may write in all (each file is also capped at the notebook limit).
MAX_EXPORT_BYTES = 4 * 2**30
MAX_METADATA_BYTES = 20 * 2**20
MAX_MEMBERS = 200_000

NO_NOTEBOOK = Status.NO_NOTEBOOK
MISSING_FOLDER = Status.MISSING_FOLDER


class BadExport(Exception):
    """The export as a whole cannot be read (a damaged zip): the text says why."""


@dataclass
class Submitter:
    name: str = ""
    email: str = ""
    sid: str = ""


@dataclass
class Entry:
    name: str  # the submission's folder name, also its folder under OUT
    submitters: list = field(default_factory=list)  # Submitter
    notebook: Path | None = None  # what to grade; None: `status` and `reason` say why not
    status: str = ""
    reason: str = ""  # for the student (shown in results.json) when there is nothing to grade
    note: str = ""  # for the instructor: what is odd about this entry


class _NamesNotUTF8(Exception):
    """The zip flags its member names UTF-8 and one is not: zipfile cannot list any of them."""


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except UnicodeDecodeError:
        raise _NamesNotUTF8() from None


def _zip_names(path: Path) -> list[str] | None:
    """The zip's member names; [] when it is no zip; None when it is one whose names cannot be
    read (taken for an export, which then stops with a message, as the instructor's input)."""
    try:
        with _open_zip(path) as archive:
            return archive.namelist()
    except _NamesNotUTF8:
        return None
    except (zipfile.BadZipFile, OSError):
        return []


def _looks_like_export(names: list[str]) -> bool:
    """Top-level (or one folder down) metadata file or submission_<id> folders."""
    for name in names:
        parts = PurePosixPath(name).parts
        for depth in (0, 1):
            if len(parts) > depth and (
                parts[depth] == METADATA_NAME
                or (len(parts) > depth + 1 and SUBMISSION_FOLDER.fullmatch(parts[depth]))
            ):
                return True
    return False


def export_root(folder: Path) -> Path | None:
    """The folder holding the export's metadata and submission folders (itself or its only
    subfolder), or None when `folder` is not an export."""

    def is_root(candidate: Path) -> bool:
        if (candidate / METADATA_NAME).is_file():
            return True
        return any(p.is_dir() and SUBMISSION_FOLDER.fullmatch(p.name) for p in candidate.iterdir())

    if is_root(folder):
        return folder
    children = [p for p in folder.iterdir() if p.is_dir() and not _ignored(p.name)]
    if len(children) == 1 and not children[0].is_symlink() and is_root(children[0]):
        return children[0]
    return None


def _ignored(name: str) -> bool:
    """Folders no submission is in: hidden ones, and what macOS adds when it zips a folder."""
    return name.startswith(".") or name == "__MACOSX"


def is_export(target: Path) -> bool:
    if target.is_dir():
        return export_root(target) is not None
    if target.suffix != ".zip":
        return False
    names = _zip_names(target)
    return names is None or _looks_like_export(names)


def _safe_member_path(name: str) -> PurePosixPath | None:
    """The member's path inside the unpacking folder, or None if it could leave it."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or not path.parts or ".." in path.parts or ":" in path.parts[0]:
        return None
    return path


def unpack(zip_path: Path, into: Path) -> list[str]:
    """Unpack what grading needs (the metadata, notebooks and zips) into `into`.

    Why not ZipFile.extractall: each member is checked first. A member that would land outside
    `into`, a symbolic link, or more than the notebook limit is not written as such (the limit
    is read, not trusted from the header, as in mnist_grader.notebook). Returns the problems
    seen, one line each, for the instructor.
    """
    problems: list[str] = []
    written = 0
    try:
        archive = _open_zip(zip_path)
    except _NamesNotUTF8:
        raise BadExport(
            f"{inert.name(zip_path.name)} is not a readable export: the names of its files are "
            "marked UTF-8 and one is not (a damaged or altered zip); download it again"
        ) from None
    except (zipfile.BadZipFile, OSError) as error:
        raise BadExport(f"{inert.name(zip_path.name)} is not a readable zip ({error})") from None
    with archive:
        if len(archive.infolist()) > MAX_MEMBERS:
            raise BadExport(f"{zip_path.name} holds more than {MAX_MEMBERS} files")
        for info in archive.infolist():
            try:
                problem, size = _unpack_member(archive, info, into)
            except OSError as error:  # e.g. a file where a folder of the same name must go
                problem, size = f"{info.filename}: could not be unpacked ({error.strerror})", 0
            if problem:
                problems.append(problem)
            written += size
            if written > MAX_EXPORT_BYTES:
                raise BadExport(
                    f"{zip_path.name} unpacks to more than {MAX_EXPORT_BYTES // 2**30} GB "
                    "of notebooks; unpack it yourself and grade the folder"
                )
    return problems


def _unpack_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, into: Path):
    """Write one member (or not, saying why); returns (problem or "", bytes written)."""
    path = _safe_member_path(info.filename)
    if path is None:
        return f"{info.filename}: a path outside the export, not unpacked", 0
    target = into.joinpath(*path.parts)
    if stat.S_ISLNK(info.external_attr >> 16):
        _not_unpacked(target, "was a symbolic link in the export zip")
        return f"{info.filename}: a symbolic link, not unpacked", 0
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return "", 0
    target.parent.mkdir(parents=True, exist_ok=True)
    if not (path.suffix in GRADABLE_SUFFIXES or path.name == METADATA_NAME):
        target.touch()  # a PDF or other file: its name is enough (no notebook? it says so)
        return "", 0
    limit = MAX_METADATA_BYTES if path.name == METADATA_NAME else MAX_NOTEBOOK_BYTES
    if info.file_size > limit:  # refused by its stated size, unread: zipfile reads no more
        _not_unpacked(target, too_large(info.file_size).removeprefix("the file "))
        return f"{info.filename}: {info.file_size / 2**20:.0f} MB, over the limit, not unpacked", 0
    try:
        with archive.open(info) as member:
            data = member.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError):
        _not_unpacked(target, "was damaged in the export zip")
        return f"{info.filename}: damaged in the zip, not unpacked", 0
    target.write_bytes(data)  # over the limit after all: the notebook reader says so
    return "", len(data)


NOT_UNPACKED = ".not-unpacked"  # beside a member that was not unpacked: the reason, for its row


def _not_unpacked(target: Path, reason: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.with_name(target.name + NOT_UNPACKED).write_text(f"{target.name} {reason}")


def _metadata_loader():
    """PyYAML's safe loader refusing anchors and aliases: a few lines of aliases to aliases
    (an "alias bomb") describe a value of billions of items, which reading a name from it
    builds. Gradescope's metadata names each submitter in full."""
    import yaml

    class NoAliases(yaml.SafeLoader):
        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise yaml.composer.ComposerError(
                    None, None, "it uses YAML anchors or aliases", event.start_mark
                )
            return super().compose_node(parent, index)

    return NoAliases


def read_metadata(root: Path) -> tuple[dict[str, list[Submitter]] | None, str]:
    """folder name -> its submitters, from submission_metadata.yml; (None, why) without it."""
    import yaml

    path = root / METADATA_NAME
    if not path.is_file() or path.is_symlink():
        return None, f"no {METADATA_NAME}: submissions graded without names, emails or SIDs"
    with path.open("rb") as handle:
        text = handle.read(MAX_METADATA_BYTES + 1)
    if len(text) > MAX_METADATA_BYTES:
        return None, (
            f"{METADATA_NAME} is over {MAX_METADATA_BYTES // 2**20} MB, not read: identities "
            "left blank"
        )
    try:
        data = yaml.load(text, Loader=_metadata_loader())  # a safe loader, see there
    except yaml.YAMLError as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        return None, f"{METADATA_NAME} could not be read ({first}): identities left blank"
    if not isinstance(data, dict):
        return None, f"{METADATA_NAME} is not a mapping of folders: identities left blank"
    found = {}
    for folder, record in data.items():
        found[str(folder)] = _submitters(record)
    return found, ""


def _field(record: dict, name: str) -> str:
    """Gradescope writes Ruby-style keys (":name"); take the plain key too. Only a name, a
    number or a date is one: a list or a mapping there is left blank."""
    value = record.get(f":{name}", record.get(name))
    if value is None or isinstance(value, (list, dict)):
        return ""
    return str(value).strip()


def _submitters(record) -> list[Submitter]:
    if not isinstance(record, dict):
        return []
    people = record.get(":submitters", record.get("submitters"))
    if not isinstance(people, list):
        return []
    return [
        Submitter(_field(p, "name"), _field(p, "email"), _field(p, "sid"))
        for p in people
        if isinstance(p, dict)
    ]


def _choose(folder: Path) -> tuple[Path | None, list[str]]:
    """The file to grade in a submission folder (as on Gradescope), and every file's name."""
    from .package import find_gradescope_submission

    files = sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if (p.is_file() or p.is_symlink()) and not p.name.endswith(NOT_UNPACKED)
    )
    return find_gradescope_submission(folder), files


def read_export(root: Path, problems: list[str] | None = None) -> tuple[list[Entry], list[str]]:
    """One Entry per submission of the export unpacked at `root`; and notes for the instructor
    about the export as a whole."""
    notes = list(problems or [])
    metadata, why = read_metadata(root)
    if why:
        notes.append(why)
    folders = {
        p.name: p
        for p in sorted(root.iterdir())
        if p.is_dir() and not p.is_symlink() and not _ignored(p.name)
    }
    names = sorted(set(folders) | set(metadata or {}), key=_natural)
    entries = []
    for name in names:
        entry = Entry(name, (metadata or {}).get(name, []))
        folder = folders.get(name)
        if folder is None and not _is_folder_name(name):  # a metadata key that is a path
            entry.status = MISSING_FOLDER
            entry.reason = (
                f"{METADATA_NAME} names this submission {inert.name(name)}, which is a path, not "
                "a folder of the export"
            )
            entry.note = entry.reason
            entries.append(entry)
            continue
        if folder is None:
            entry.status = MISSING_FOLDER
            entry.reason = f"{METADATA_NAME} names this submission, but the export has no folder"
            entry.note = entry.reason
            entries.append(entry)
            continue
        if metadata is not None and name not in metadata:
            entry.note = f"not named in {METADATA_NAME}: no name, email or SID"
        entry.notebook, files = _choose(folder)
        skipped = sorted(p.read_text() for p in folder.rglob("*" + NOT_UNPACKED))
        if entry.notebook is None:
            held = ", ".join(files) if files else "no files"
            if skipped:
                entry.status = Status.UNREADABLE
                entry.reason = "; ".join(skipped)
            else:
                entry.status = NO_NOTEBOOK
                entry.reason = f"No notebook in this submission (it holds: {held})"
            entry.note = "; ".join(filter(None, [entry.note, entry.reason]))
        elif len([f for f in files if Path(f).suffix in GRADABLE_SUFFIXES]) > 1:
            others = [f for f in files if f != str(entry.notebook.relative_to(folder))]
            extra = f"graded {entry.notebook.name}; also holds {', '.join(others)}"
            entry.note = "; ".join(filter(None, [entry.note, extra]))
        entries.append(entry)
    return entries, notes


def _is_folder_name(name: str) -> bool:
    """A name that can be a folder in the export (the metadata's keys are plain text)."""
    return name not in ("", ".", "..") and not any(c in name for c in "/\\\0")


def _natural(text: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def open_export(target: Path, workdir: Path) -> tuple[list[Entry], list[str]]:
    """Entries and notes of the export at `target` (a zip is unpacked into `workdir`)."""
    problems: list[str] = []
    if target.is_dir():
        root = export_root(target)
    else:
        unpacked = workdir / "export"
        unpacked.mkdir(parents=True)
        problems = unpack(target, unpacked)
        root = export_root(unpacked)
    if root is None:
        raise BadExport(f"{target} does not hold a Gradescope export")
    return read_export(root, problems)
