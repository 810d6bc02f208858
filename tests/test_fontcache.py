"""matplotlib's font list, made once and copied into each cold kernel (mnist_grader.fontcache).
That a real sandboxed kernel uses it: tests/test_session.py."""

from __future__ import annotations

import json
import os

import pytest

from mnist_grader import fontcache, launcher


def test_prepare_makes_a_list_matplotlib_reads_once(tmp_path):
    folder = tmp_path / "fonts"
    made = fontcache.prepare(folder)
    assert made is not None and made.parent == folder and made.match(fontcache.PATTERN)
    listed = json.loads(made.read_text())
    assert listed["_version"] in made.name and listed["ttflist"]  # matplotlib's own format
    stamp = made.stat().st_mtime_ns
    assert fontcache.prepare(folder) == made and made.stat().st_mtime_ns == stamp  # not again
    assert [p.name for p in folder.iterdir()] == [made.name]  # no scratch folder left
    assert fontcache.read_own(made) == (made.name, made.read_bytes())


def test_an_unwritable_folder_means_no_list(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert fontcache.prepare(blocker / "fonts") is None


def test_only_a_regular_file_of_our_own_is_read(tmp_path):
    real = tmp_path / "fontlist-v3.11.0.json"
    real.write_text("{}")
    link = tmp_path / "fontlist-v9.json"
    link.symlink_to(real)
    assert fontcache.read_own(link) is None  # never through a link
    assert fontcache.read_own(tmp_path / "fontlist-v1.json") is None  # missing
    other = tmp_path / "other.json"
    other.write_text("{}")
    assert fontcache.read_own(other) is None  # not a font list's name
    os.mkfifo(tmp_path / "fontlist-v2.json")
    assert fontcache.read_own(tmp_path / "fontlist-v2.json") is None  # not a regular file


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
def test_another_users_file_is_not_read(tmp_path):
    theirs = tmp_path / "fontlist-v3.11.0.json"
    theirs.write_text("{}")
    os.chown(theirs, 61999, 65534)
    assert fontcache.read_own(theirs) is None


def test_the_kernels_tmp_is_made_afresh_over_what_the_last_kernel_left(tmp_path):
    # A kernel that replaced its tmp/ with a link to /etc (tests/bank/hostile.py's
    # plants_links_then_restarts) left its restart nowhere to write the font list.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "tmp").symlink_to(elsewhere)
    launcher._real_folder(workdir / "tmp")
    assert (workdir / "tmp").is_dir() and not (workdir / "tmp").is_symlink()
    assert elsewhere.is_dir()  # the link's target is left alone
    (workdir / "tmp").rmdir()
    (workdir / "tmp").write_text("a file")
    launcher._real_folder(workdir / "tmp")
    assert (workdir / "tmp").is_dir()
    launcher._real_folder(workdir / "tmp")  # a folder already: kept
    assert (workdir / "tmp").is_dir()
