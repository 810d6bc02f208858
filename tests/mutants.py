"""`make mutants`: break the grader on purpose, one named change at a time, and see which test
notices (mutation testing, with a hand-picked list: each entry is a real way a check or a
protection could be weakened by an edit).

Each mutation is applied to a scratch copy of the working tree, then only the tests that should
catch it run there (for a check, the bank cases about it: BANK_CASES restricts the bank the suite
grades). A mutation is *caught* when those tests fail, *missed* when they pass, *stale* when its
text no longer occurs exactly once in the file. The same tests run unmutated first, so a failure
is the mutation's doing. Not part of `make test`: it runs the suite's slow parts many times.
Writes docs/mutants.md with the table of the last run.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The data, where the Makefile finds it: the scratch copies have no ../shared beside them.
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "mnist.npz"
REPORT = ROOT / "docs" / "mutants.md"
EXERCISE = "autograder/master/mnist_exercise.py"


@dataclass
class Mutation:
    name: str
    path: str
    old: str
    new: str
    tests: list  # pytest arguments: the narrowest tests that should catch it
    cases: tuple = ()  # bank cases those tests grade


def bank_test(*cases: str) -> list[str]:
    """The bank's assertions for `cases` (their scores, max scores, first feedback lines)."""
    selected = " or ".join(cases)
    return ["tests/test_bank.py", "tests/test_hostile.py", "-k", f"({selected})"]


MUTATIONS = [
    Mutation(
        "shape check accepts any shape",
        EXERCISE,
        'expect(shape == expected, f"{what} is not right.{hint}", expected, got)',
        'expect(True, f"{what} is not right.{hint}", expected, got)',
        bank_test("fails_q4a_q4c_reversed_shapes"),
        ("fails_q4a_q4c_reversed_shapes",),
    ),
    Mutation(
        "hidden label count accepts any length",
        EXERCISE,
        "        as_shape(got) == expected,\n",
        "        as_shape(got) is not None,\n",
        bank_test("fails_q4b_label_length_10"),
        ("fails_q4b_label_length_10",),
    ),
    Mutation(
        "input check skipped",
        EXERCISE,
        "        got in (IMAGE_SHAPE, (*IMAGE_SHAPE, 1)),\n",
        "        True,\n",
        bank_test("fails_q4d_no_input_layer"),
        ("fails_q4d_no_input_layer",),
    ),
    Mutation(
        "output units not checked",
        EXERCISE,
        "        last.units == NUM_CLASSES,\n",
        "        True,\n",
        bank_test("fails_q4d_five_output_units"),
        ("fails_q4d_five_output_units",),
    ),
    Mutation(
        "softmax not required",
        EXERCISE,
        '        activation == "softmax",\n',
        "        True,\n",
        bank_test("fails_q4d_logits_without_softmax"),
        ("fails_q4d_logits_without_softmax",),
    ),
    Mutation(
        "any optimizer accepted",
        EXERCISE,
        '        spec.optimizer.lower() == "adam",\n',
        "        True,\n",
        bank_test("fails_q4d_sgd_optimizer"),
        ("fails_q4d_sgd_optimizer",),
    ),
    Mutation(
        "predict_probs tolerance loosened to 0.5",
        EXERCISE,
        "    if float(np.abs(probs - want).max()) <= 1e-4:\n",
        "    if float(np.abs(probs - want).max()) <= 0.5:\n",
        bank_test("fails_q4d_softmax_applied_twice"),
        ("fails_q4d_softmax_applied_twice",),
    ),
    Mutation(
        "accuracy bar dropped",
        EXERCISE,
        "        accuracy >= MIN_ACCURACY,\n",
        "        accuracy >= 0.0,\n",
        bank_test("fails_q4d_learning_rate_too_small"),
        ("fails_q4d_learning_rate_too_small",),
    ),
    Mutation(
        "accuracy judged again on a model build_model's checks charge",
        EXERCISE,
        "    if _charged_by_the_build_checks(spec):\n",
        "    if False:\n",
        bank_test("fails_q4d_sgd_optimizer", "fails_q4d_five_output_units"),
        ("fails_q4d_sgd_optimizer", "fails_q4d_five_output_units"),
    ),
    Mutation(
        "top_class judged on its shape only",
        EXERCISE,
        "        np.array_equal(np.asarray(got), want),\n",
        "        True,\n",
        bank_test("fails_q5_classes_counted_from_1"),
        ("fails_q5_classes_counted_from_1",),
    ),
    Mutation(
        "bar heights compared loosely",
        EXERCISE,
        "np.allclose(heights, want, atol=1e-6)",
        "np.allclose(heights, want, atol=1.0)",
        bank_test("fails_q6_bars_not_probabilities"),
        ("fails_q6_bars_not_probabilities",),
    ),
    Mutation(
        "bar labels not checked",
        EXERCISE,
        "        labels == CLASS_NAMES,\n",
        "        True,\n",
        bank_test("fails_q6_bars_not_labelled"),
        ("fails_q6_bars_not_labelled",),
    ),
    Mutation(
        "highlight not checked",
        EXERCISE,
        "        all(look[top] != other for i, other in enumerate(look) if i != top),\n",
        "        True,\n",
        bank_test("fails_q6_predicted_bar_not_highlighted"),
        ("fails_q6_predicted_bar_not_highlighted",),
    ),
    Mutation(
        "image not checked",
        EXERCISE,
        "        any(_shows(a, image) for a in shown),\n",
        "        True,\n",
        bank_test("fails_q6_no_image"),
        ("fails_q6_no_image",),
    ),
    Mutation(
        "probability rows need not sum to 1",
        EXERCISE,
        "        and np.allclose(probs.sum(axis=1), 1, atol=1e-4)\n",
        "",
        bank_test("fails_q4d_probs_halved", "fails_q4d_probs_doubled"),
        ("fails_q4d_probs_halved", "fails_q4d_probs_doubled"),
    ),
    Mutation(
        "softmax of the output accepted whatever the student's model",
        EXERCISE,
        "    if softmax_of_output and _without_softmax(build_model):\n",
        "    if softmax_of_output:\n",
        bank_test("fails_q4d_softmax_applied_twice"),
        ("fails_q4d_softmax_applied_twice",),
    ),
    Mutation(
        "figures the cells left open stay open for the checks' calls",
        "mnist_grader/probe.py",
        '            pyplot.close("all")\n',
        "            pass\n",
        bank_test("passes_all_pyplot_percent_bars"),
        ("passes_all_pyplot_percent_bars",),
    ),
    Mutation(
        "image and bars may share one axes",
        EXERCISE,
        "        all(ax is not other for other in image_axes),\n",
        "        True,\n",
        bank_test("fails_q6_image_and_bars_in_one_axes"),
        ("fails_q6_image_and_bars_in_one_axes",),
    ),
    Mutation(
        "a figure inside a tuple passes as returned",
        EXERCISE,
        "        spec.inside is None,\n",
        "        True,\n",
        bank_test("fails_q6_returns_fig_and_axes"),
        ("fails_q6_returns_fig_and_axes",),
    ),
    Mutation(
        "numpy runs weights of any shape",
        EXERCISE,
        "            if kernel != (shape[-1], layer.units) or bias != (layer.units,):\n",
        "            if False:\n",
        ["tests/test_evaluator.py", "-k", "numpy_refuses"],
    ),
    Mutation(
        "the evaluator accepts any layer class",
        "mnist_grader/evaluator.py",
        "    if allowed is None or class_name not in allowed:\n",
        "    if False:\n",
        ["tests/test_evaluator.py", "-k", "refused_before_keras"],
    ),
    Mutation(
        "hidden image count may be 28",
        EXERCISE,
        "if n not in IMAGE_SHAPE]",
        "]",
        ["tests/test_feedback.py", "-k", "never_hide_a_reversed_shape"],
    ),
    Mutation(
        "an unexpected exception counts as passed",
        "mnist_grader/checks.py",
        "passed, feedback, record = False, _feedback(error), _record(error)",
        'passed, feedback, record = True, "", {}',
        bank_test("untouched_starter"),
        ("untouched_starter",),
    ),
    Mutation(
        "max_score written equal to score",
        "mnist_grader/results.py",
        '"max_score": question.max_score,',
        '"max_score": question.score,',
        bank_test("fails_q5_argmax_axis0"),
        ("fails_q5_argmax_axis0",),
    ),
    Mutation(
        "otter's own cells run instead of skipped",
        "mnist_grader/notebook.py",
        "def _only_talks_to_otter(source: str) -> bool:\n",
        "def _only_talks_to_otter(source: str) -> bool:\n    return False\n",
        ["tests/test_hostile.py", "-k", "no_cell_problems"],
        ("passes_all",),
    ),
    Mutation(
        "protect() does nothing",
        "mnist_grader/sandbox.py",
        "    for path in modes:\n        path.chmod(0o700)\n",
        "",
        ["tests/test_hostile.py", "-k", "never_reach_the_feedback"],
        ("reads_the_checks",),
    ),
    Mutation(
        "no address-space limit",
        "mnist_grader/launcher.py",
        "        resource.RLIMIT_AS: memory_bytes,\n",
        "",
        ["tests/test_protections.py", "-k", "memory_beyond_the_address_space"],
    ),
    Mutation(
        "no CPU-time limit",
        "mnist_grader/launcher.py",
        "        resource.RLIMIT_CPU: cpu_seconds,\n",
        "",
        ["tests/test_protections.py", "-k", "cpu_time_beyond_the_limit"],
    ),
    Mutation(
        "no file-size limit",
        "mnist_grader/launcher.py",
        "        resource.RLIMIT_FSIZE: max_file_bytes,\n",
        "",
        ["tests/test_protections.py", "-k", "file_beyond"],
    ),
    Mutation(
        "no process-count limit",
        "mnist_grader/launcher.py",
        "        limits[resource.RLIMIT_NPROC] = max_processes\n",
        "        pass\n",
        ["tests/test_protections.py", "-k", "processes_beyond_the_limit"],
    ),
    Mutation(
        "root reads a font list through a link",
        "mnist_grader/fontcache.py",
        "os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK",
        "os.O_RDONLY | os.O_NONBLOCK",
        ["tests/test_fontcache.py", "-k", "only_a_regular_file"],
    ),
    Mutation(
        "root reads another user's font list",
        "mnist_grader/fontcache.py",
        "            or info.st_uid != os.geteuid()\n",
        "",
        ["tests/test_fontcache.py", "-k", "another_users_file"],
    ),
    Mutation(
        "the sweep kills nothing",
        "mnist_grader/sandbox.py",
        "                proc.kill()\n",
        "                pass\n",
        ["tests/test_protections.py", "-k", "left_behind"],
    ),
    Mutation(
        "a submission's folder may take the name of one of OUT's own files",
        "mnist_grader/batch.py",
        "    taken = {name.casefold() for name in results.OUT_FILES}\n",
        "    taken = set()\n",
        ["tests/test_report.py", "-k", "no_file_name"],
    ),
    Mutation(
        "names shown with their control characters",
        "mnist_grader/inert.py",
        '    return "".join(c if c.isprintable() else _spelled_out(c) for c in value)\n',
        "    return value\n",
        ["tests/test_feedback.py", "-k", "names_are_shown_inert"],
    ),
    Mutation(
        "a report link is the folder's name as it is",
        "mnist_grader/report.py",
        '    return "./" + urllib.parse.quote(os.fsencode(page))\n',
        "    return page\n",
        ["tests/test_report.py", "-k", "no_name_becomes_a_scheme"],
    ),
    Mutation(
        "the export's metadata may use YAML aliases",
        "mnist_grader/gradescope_export.py",
        '            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):\n',
        "            if False:\n",
        ["tests/test_gradescope_export.py", "-k", "aliases"],
        ("passes_all", "fails_q4b_label_length_10"),  # the export's notebooks, not graded
    ),
    Mutation(
        "the sweep removes by path, through a folder a kernel swapped for a link",
        "mnist_grader/sandbox.py",
        "                    _quietly(os.unlink, name, fd, found, where)\n",
        "                    _quietly(lambda _, dir_fd: os.unlink(where(name)), name, fd, found, "
        "where)\n",
        ["tests/test_protections.py", "-k", "swapped_for_a_link"],
    ),
    Mutation(
        "the grading process's memory not capped",
        "mnist_grader/engine.py",
        "    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))\n",
        "",
        bank_test("model_too_large_to_check"),
        ("model_too_large_to_check",),
    ),
    Mutation(
        "no CPU group per kernel",
        "mnist_grader/launcher.py",
        "        join_cpu_group(args.uid)\n",
        "",
        ["tests/test_session.py", "-k", "cpu_group"],
    ),
    Mutation(
        "a restarted kernel's tmp/ kept as the link the last kernel left",
        "mnist_grader/launcher.py",
        "    if path.is_symlink() or (path.exists() and not path.is_dir()):\n",
        "    if False:\n",
        ["tests/test_fontcache.py", "-k", "afresh"],
    ),
    Mutation(
        "a kernel's imports left to the garbage collector's full passes",
        "mnist_grader/launcher.py",
        "    _gc.freeze()\n",
        "    pass\n",
        ["tests/test_kernel_imports.py", "-k", "frozen"],
    ),
    Mutation(
        "a module that fails in a kernel's imports stops the kernel",
        "mnist_grader/launcher.py",
        "        except Exception:\n            pass\n",
        "        except Exception:\n            raise\n",
        ["tests/test_kernel_imports.py", "-k", "student_cells_error"],
    ),
    Mutation(
        "a missing function reaches the check as a crash",
        EXERCISE,
        "        function is not None,\n",
        "        True,\n",
        ["tests/test_feedback.py", "-k", "missing_function"],
    ),
]

IGNORED = shutil.ignore_patterns(
    ".venv", ".git", "build", "grades", "__pycache__", ".pytest_cache", ".ruff_cache", "*.zip"
)


def run_tests(tree: Path, tests: list[str], cases: tuple) -> tuple[bool, str, float]:
    """(passed, the first failing test or what went wrong, seconds) of `tests` in `tree`."""
    env = {
        **os.environ,
        "MNIST_NPZ": os.environ.get("MNIST_NPZ") or str(DEFAULT_DATA),
        "BANK_CASES": ",".join(cases) or "passes_all",
    }
    started = time.monotonic()
    ran = subprocess.run(
        [str(tree / ".venv" / "bin" / "python"), "-m", "pytest", "-q", "-x", "-p",
         "no:cacheprovider", *tests],
        cwd=tree, env=env, capture_output=True, text=True, errors="replace",
    )  # fmt: skip
    seconds = time.monotonic() - started
    if ran.returncode == 0:
        return True, "", seconds
    failed = re.findall(r"^FAILED (\S+)", ran.stdout, re.MULTILINE)
    if ran.returncode == 5 or not failed and ran.returncode != 1:
        return False, f"pytest exit {ran.returncode}: {ran.stdout[-300:]}", seconds
    return False, failed[0] if failed else ran.stdout[-200:], seconds


def all_tests(mutations) -> tuple[list[str], tuple]:
    """Every mutation's tests in one run (and the bank cases they need), for the unmutated run."""
    files, selections, cases = [], [], []
    for mutation in mutations:
        files += [t for t in mutation.tests if t.startswith("tests/") and t not in files]
        selections.append(mutation.tests[mutation.tests.index("-k") + 1])
        cases += [c for c in mutation.cases if c not in cases]
    return [*files, "-k", " or ".join(f"({s})" for s in selections)], tuple(cases)


def scratch_copy(into: Path) -> Path:
    """The working tree without its venv, build and history; its .venv links to ours, so that
    the kernels it starts see it as their checkout (as they do in a real one)."""
    tree = into / "tree"
    shutil.copytree(ROOT, tree, ignore=IGNORED, symlinks=True)
    (tree / ".venv").symlink_to(ROOT / ".venv")
    for folder in (into, tree):
        folder.chmod(0o755)  # the sandbox user must reach the venv's interpreter
    return tree


def apply(tree: Path, mutation: Mutation) -> bool:
    path = tree / mutation.path
    text = path.read_text()
    if text.count(mutation.old) != 1:
        return False
    path.write_text(text.replace(mutation.old, mutation.new))
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "-k",
        dest="only",
        default="",
        help="run only the mutations whose name has this (docs/mutants.md is left as it is)",
    )
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if args.only in m.name]
    rows = []
    with tempfile.TemporaryDirectory(prefix="mnist-mutants-") as scratch:
        Path(scratch).chmod(0o755)
        clean = scratch_copy(Path(scratch) / "clean")
        ok, why, _ = run_tests(clean, *all_tests(chosen))
        if not ok:
            sys.exit(f"unmutated, the tests that judge the mutations fail already: {why}")
        shutil.rmtree(clean)
        for number, mutation in enumerate(chosen):
            tree = scratch_copy(Path(scratch) / f"m{number}")
            if not apply(tree, mutation):
                rows.append((mutation, "stale", "its text is not in the file exactly once", 0))
            else:
                passed, why, seconds = run_tests(tree, mutation.tests, mutation.cases)
                rows.append((mutation, "missed" if passed else "caught", why, seconds))
            print(f"{rows[-1][1]:7} {mutation.name}: {rows[-1][2]}", flush=True)
            shutil.rmtree(tree, ignore_errors=True)
    missed = [m.name for m, outcome, _, _ in rows if outcome != "caught"]
    if args.only:  # a few of them: the report keeps the last full run's every row
        print(f"\n{len(rows) - len(missed)} of {len(rows)} mutations caught (report not written)")
    else:
        write_report(rows)
        print(f"\n{len(rows) - len(missed)} of {len(rows)} mutations caught; report: {REPORT}")
    if missed:
        sys.exit(f"not caught: {', '.join(missed)}")


def write_report(rows) -> None:
    lines = [
        "# Mutation testing: what the suite catches",
        "",
        f"Written by `make mutants` on {datetime.date.today()} ({platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}); not by hand. Each row is "
        "one deliberate weakening of a check or a protection (listed in `tests/mutants.py`), "
        "applied alone to a scratch copy, and the narrowest tests that must notice it.",
        "",
        "| mutation | file | outcome | caught by | seconds |",
        "|---|---|---|---|---|",
    ]
    for mutation, outcome, why, seconds in rows:
        lines.append(
            f"| {mutation.name} | `{mutation.path}` | {outcome} | {why.replace('|', '/')} | "
            f"{seconds:.0f} |"
        )
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
