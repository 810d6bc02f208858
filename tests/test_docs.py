"""Every command an instructor can run is documented in the README."""

import re
from pathlib import Path

from mnist_grader import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_make_target_is_documented():
    targets = re.findall(r"^([a-z-]+):.*## ", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert len(targets) >= 8
    for target in targets:
        assert f"make {target}" in README, f"`make {target}` is not in the README"


def test_every_cli_command_is_documented():
    for command in cli.COMMANDS:
        assert f"python -m mnist_grader {command}" in README, command


def test_readme_gives_the_two_commands():
    assert "make grade SUBMISSIONS=" in README and "make test" in README


def test_the_bank_table_is_up_to_date():
    """docs/bank.md is generated from tests/bank (make docs): a stale copy fails here."""
    from tests import bank

    assert (ROOT / "docs" / "bank.md").read_text() == bank.markdown(), "run `make docs`"
