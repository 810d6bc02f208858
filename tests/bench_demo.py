"""`make bench`, third part (issue 23): the first command a newcomer runs, `make grade` with no
arguments, which builds the demo class (tests/bank: DEMO) and grades it with the defaults (two
at a time, warm kernels). Its wall time, CPU seconds and peak memory, with every score checked
against the bank's expectations, go in their section of docs/performance.md
(`python -m tests.bench_demo` runs this part alone).
"""

from __future__ import annotations

import csv
import os
import subprocess
import tempfile
from pathlib import Path

from mnist_grader import PROJECT_ROOT
from tests import bank
from tests.bench import write_section
from tests.bench_warm import run

ABOUT_A_MINUTE = 90  # seconds: what the README's "about a minute" may stretch to


def graded_as_expected(gradebook: Path) -> list[str]:
    """The demo's rows whose scores are not the bank's expected ones (empty: all as expected)."""
    cases = {case.name: case for case in bank.CASES}
    with gradebook.open() as handle:
        rows = {row["file"].removesuffix(".ipynb"): row for row in csv.DictReader(handle)}
    wrong = sorted(set(bank.DEMO) ^ set(rows))
    for name in set(bank.DEMO) & set(rows):
        expected = bank.expected_scores(cases[name])
        if any(float(rows[name][q]) != score for q, score in expected.items()):
            wrong.append(name)
    return wrong


def main() -> None:
    # the checks and the venv already built, as after a first `make grade`; then the command itself
    subprocess.run(["make", "--no-print-directory", "checks"], cwd=PROJECT_ROOT, check=True)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mnist-bench-demo-") as tmp:
        out = Path(tmp) / "grades"
        command = ["make", "--no-print-directory", "grade", f"OUT={out}"]
        figures = run(command, dict(os.environ), cwd=PROJECT_ROOT)
        wrong = graded_as_expected(out / "gradebook.csv")
    load_after = os.getloadavg()[0]
    print(figures, flush=True)
    if wrong:
        raise SystemExit(f"the demo did not grade as the bank expects: {wrong}")
    count, cores = len(bank.DEMO), os.cpu_count()
    met = "met" if figures["wall"] <= ABOUT_A_MINUTE else "NOT met"
    body = f"""
`make grade` with no arguments, as a newcomer runs it once the venv and the checks are built:
it writes the demo class's {count} notebooks (`tests/bank`: `DEMO`, the reference, the untouched
starter and typical honest mistakes) into `build/demo/` and grades them with the defaults (two
at a time, warm kernels), then writes the gradebook and the class report. Every score was the
bank's expected one. CPU seconds: user + system of the whole process tree (os.wait4); memory:
peak of its summed PSS. The machine may be shared with other work while it runs: its
1-minute load average was {load_before:.1f} before and {load_after:.1f} after ({cores} cores).

| submissions | wall s | CPU s | peak MB |
|---:|---:|---:|---:|
| {count} | {figures["wall"]:.0f} | {figures["cpu"]:.0f} | {figures["peak_mb"]:.0f} |

- [{met}] about a minute: within {ABOUT_A_MINUTE} s on this machine
"""
    write_section("demo", "The demo class: `make grade` with no arguments (issue 23)", body)
    print(body)


if __name__ == "__main__":
    main()
