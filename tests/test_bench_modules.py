"""make bench runs each of its parts as `python -m tests.<part>`: a part whose module defines
main() but never calls it when run so does nothing, and its section of docs/performance.md
silently keeps an old run's figures (tests/bench.py did, and Gradescope's section went stale)."""

import ast
import re

from mnist_grader import PROJECT_ROOT


def test_every_part_of_make_bench_runs_its_main():
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    recipe = makefile.split("\nbench:", 1)[1].split("\n\n", 1)[0]
    parts = re.findall(r"-m tests\.(\w+)", recipe)
    assert parts, "no part of make bench found in the Makefile"
    for part in parts:
        tree = ast.parse((PROJECT_ROOT / "tests" / f"{part}.py").read_text())
        guards = [
            node
            for node in tree.body
            if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
        ]
        assert guards and "main()" in ast.unparse(guards[-1]), f"tests/{part}.py never runs"
