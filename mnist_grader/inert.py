"""Text from students shown inert: on the instructor's terminal, in the gradebook, the class
report, results.json and grader.log.

A file name, a submitter's name, what a function returned or an error message is the student's
own text. Shown as it is, an ESC starts a terminal escape (it can retitle the window or clear
the screen), a newline forges a row of the table, U+202E (right-to-left override) reverses the
text after it, and a byte that is not UTF-8 stops a CSV or JSON writer. Every place that shows
such text calls `name` (one line) or `text` (lines kept), which spell those characters out as
Python does (`\\x1b`, `\\n`, `\\u202e`; a byte that was not UTF-8 as `\\xe9`). A name loses
every character Python does not count as printable (also zero-width and other invisible ones,
which could make two names look alike); text keeps its newlines and tabs and loses the controls,
bidirectional controls, line separators and undecodable bytes. Written by hand because the
standard library's nearest, repr(), also escapes quotes and backslashes and adds quotes.
"""

from __future__ import annotations

import os
import re

# What text() spells out (name() spells out all that is not printable): C0 controls but newline
# and tab, DEL, C1 controls, the bidirectional controls (marks, embeddings, overrides,
# isolates), line and paragraph separators, and surrogates (os.fsdecode turns each byte that
# is not UTF-8 into U+DC80-U+DCFF).
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_IN_TEXT = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}\u2028\u2029\ud800-\udfff]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _spelled_out(char: str) -> str:
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _as_str(value) -> str:
    if isinstance(value, (bytes, os.PathLike)):
        value = os.fsdecode(value)
    return value if isinstance(value, str) else str(value)


def name(value) -> str:
    """A name (a file, a folder, a student) as one inert line: str, bytes or a path; every
    character but printable ones and the space spelled out."""
    value = _as_str(value)
    if value.isprintable():
        return value
    return "".join(c if c.isprintable() else _spelled_out(c) for c in value)


def text(value) -> str:
    """Text of several lines (feedback, a log) made inert; its newlines and tabs are kept."""
    return _IN_TEXT.sub(lambda match: _spelled_out(match.group()), _as_str(value))


def strings(data):
    """Every string in JSON-like data (dicts, lists) made inert with `text`."""
    if isinstance(data, str):
        return text(data)
    if isinstance(data, dict):
        return {strings(key): strings(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [strings(item) for item in data]
    return data
