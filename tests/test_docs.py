"""Every command an instructor can run is documented in the README, every setting in the docs,
and every link between them leads somewhere."""

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
    assert len(cli.commands()) >= 6
    for command in cli.commands():
        assert f"python -m mnist_grader {command}" in README, command


def test_readme_gives_the_two_commands():
    assert "make grade SUBMISSIONS=" in README and "make test" in README


def test_the_bank_table_is_up_to_date():
    """docs/bank.md is generated from tests/bank (make docs): a stale copy fails here."""
    from tests import bank

    assert (ROOT / "docs" / "bank.md").read_text() == bank.markdown(), "run `make docs`"


def test_the_facts_the_docs_repeat_are_up_to_date():
    """The questions' points, the functions, the default limits and the accuracy bars are
    written into the README and docs from their sources (make docs): a stale copy fails here."""
    from tests import docs_fragments

    values = docs_fragments.fragments()
    used = set()
    for path in docs_fragments.FILES:
        text = path.read_text()
        names = docs_fragments.used_names(text)
        assert set(names) <= set(values), (
            f"{path.name} names unknown facts: {set(names) - set(values)}"
        )
        assert docs_fragments.rewrite(text, values) == text, (
            f"{path.name} is stale: run `make docs`"
        )
        used.update(names)
        for line in text.splitlines():  # Markdown would show such a line as raw HTML
            opening = re.match(r"\s*<!-- ([a-z0-9_:-]+) -->(.+)", line)
            assert not opening, f"{path.name}: put text before the fragment on its line: {line}"
    assert {"points", "functions", "limits", "accuracy-bar:mnist"} <= used


def test_the_banks_prose_names_the_accuracy_bar_it_has():
    """A percentage in a bank case's description or expected feedback is its dataset's accuracy
    bar (mnist_exercise.DATASETS): a changed bar cannot leave the old one in docs/bank.md."""
    from tests import bank, docs_fragments

    bars = {
        k.split(":")[1]: v for k, v in docs_fragments.fragments().items() if "accuracy-bar" in k
    }
    for dataset, cases in bank.BANKS.items():
        for case in cases:
            text = case.why + " ".join(case.feedback.values())
            for percent in re.findall(r"\d+ ?%", text):
                assert percent.replace(" ", "") == bars[dataset].replace(" ", ""), case.name


DOCS = {path.name: path.read_text() for path in (ROOT / "docs").glob("*.md")}


def test_every_setting_is_documented():
    """Each flag of `grade` is explained in the README or docs/ (its --help has the meaning)."""
    from mnist_grader.settings import flag_settings

    everything = README + "".join(DOCS.values())
    flags = ["--jobs", *(f"--{s.name.replace('_', '-')}" for s in flag_settings())]
    for flag in flags:
        assert flag in everything, f"{flag} is documented nowhere"
    for setting in flag_settings():
        assert setting.metadata["help"], setting.name


def test_links_between_the_docs_lead_somewhere():
    for name, text in {"README.md": README, **DOCS}.items():
        base = ROOT if name == "README.md" else ROOT / "docs"
        for target in re.findall(r"\]\(([^)#:]+)\)", text):
            assert (base / target).exists(), f"{name} links to {target}, which is missing"


def test_the_readme_stays_short():
    """For the people who use it; the rest is in docs/."""
    assert len(README) < 16_000
