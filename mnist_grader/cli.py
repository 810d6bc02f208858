"""The command line: `python -m mnist_grader COMMAND --help` says what each command does and
what each of its settings means. Each command is one `_run_*` function, registered with its
arguments in `build_parser`, from which the command list (and the docs test) is derived."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import results, variants
from .settings import Settings, flag_help, flag_settings


def _default_data(checks_dir: Path) -> Path:
    """The data the checks build's module finds: its environment variable, then known places."""
    from .engine import exercise_module

    if not (checks_dir / "mnist_exercise.py").is_file():
        sys.exit(f"No checks in {checks_dir}: run `make assignment` first.")
    exercise = exercise_module(checks_dir)
    try:
        found = exercise.find_data_file()
    except FileNotFoundError as problem:
        sys.exit(str(problem))
    if found is None:
        places = ", ".join(map(str, exercise.KNOWN_DATA_PATHS))
        sys.exit(
            f"No {exercise.INFO.title} data found: pass --data-file or set "
            f"${exercise.DATA_ENV_VAR} (looked in {places})."
        )
    return found


def _add_settings(parser: argparse.ArgumentParser, with_paths: bool = True) -> None:
    if with_paths:
        _add_dataset(parser)
        parser.add_argument(
            "--checks-dir",
            type=Path,
            default=None,
            help="otter's autograder build: tests/ and mnist_exercise.py (default: the dataset's)",
        )
        parser.add_argument(
            "--data-file",
            type=Path,
            default=None,
            help="the data (default: $MNIST_NPZ or $FASHION_MNIST_DATA, then the known places)",
        )
    for setting in flag_settings():
        flag = f"--{setting.name.replace('_', '-')}"
        if setting.type == "bool":
            parser.add_argument(flag, action="store_true", help=flag_help(setting))
        else:
            parser.add_argument(flag, type=int, default=setting.default, help=flag_help(setting))


def _add_dataset(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        choices=sorted(variants.VARIANTS),
        default=variants.DEFAULT,
        help="which variant of the exercise (default: mnist)",
    )


def _settings(args, checks_dir: Path | None = None, data_file: Path | None = None):
    checks_dir = checks_dir or args.checks_dir or variants.get(args.dataset).checks_dir
    if not (checks_dir / "tests").is_dir():
        sys.exit(f"No checks in {checks_dir}: run `make assignment` first.")
    data_file = data_file or args.data_file or _default_data(checks_dir)
    values = {f.name: getattr(args, f.name) for f in flag_settings()}
    return Settings(checks_dir=checks_dir, data_file=data_file, **values)


def _run_grade(args) -> None:
    from . import batch, checks, inert, results
    from .gradescope_export import BadExport

    settings = _settings(args)
    if not args.submissions.exists():
        sys.exit(f"{args.submissions}: no such file or folder")
    try:
        rows = batch.grade_batch(
            args.submissions, args.out, settings, jobs=max(1, args.jobs), warm=not args.cold_kernels
        )
    except BadExport as problem:
        sys.exit(f"{inert.name(args.submissions)}: {inert.name(problem)}")
    names = checks.question_names(settings.checks_dir / "tests")
    print(results.table(rows, names))
    print(f"\nper submission: {args.out}/<submission>/results.json (grader.log: yours only)")
    print(f"gradebook: {args.out}/gradebook.csv")
    print(f"class report: {args.out}/report.html (open it in a browser)")
    if (args.out / "gradescope_scores.csv").is_file():
        print(f"scores to upload: {args.out}/gradescope_scores.csv, canvas_scores.csv")
        unnamed = [row["file"] for row in rows if not (row["sid"] or row["email"])]
        if unnamed:
            shown = ", ".join(map(inert.name, unnamed))
            print(f"not in them (no SID or email in the export): {shown}")


def _run_report(args) -> None:
    from . import report

    if not any(args.out.glob("*/results.json")):
        sys.exit(f"{args.out}: no <submission>/results.json here (grade into it first)")
    report.write(args.out)
    print(f"class report: {args.out}/report.html, {args.out}/report.json")


def _run_assign(args) -> None:
    from . import assign

    variant = variants.get(args.dataset)
    assign.build(variant)
    print(f"rebuilt {variant.assignment_dir} and {variant.solutions_dir} ({variant.name})")


def _run_autograder(args) -> None:
    from . import package

    variant = variants.get(args.dataset)
    data_file = args.data_file or _default_data(variant.checks_dir)
    target = args.target or variant.zip_path
    built = package.build_zip(data_file, variant.checks_dir, target, args.hidden_visibility)
    print(f"built {built} (hidden checks' results: {args.hidden_visibility})")


def _run_gradescope(args) -> None:
    from . import package

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s"
    )  # run_autograder's output: instructors see it on Gradescope, students never do

    package.grade_gradescope(args.root, lambda c, d: _settings(args, c, d))


def _run_grade_one(args) -> None:
    from . import engine, progress, results

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s"
    )  # the grading child's stderr is the submission's grader.log (mnist_grader.batch)
    settings = _settings(args)
    settings.slot = args.slot
    settings.kernel_template = args.kernel_template
    progress.report_to(args.progress_fd)
    try:
        report = engine.grade_submission(args.submission, settings, own_process=True)
    except MemoryError:  # past --grader-memory-mb outside a check: the whole submission says so
        logging.exception("grading ran out of the grader's memory (--grader-memory-mb)")
        report = engine.out_of_memory(args.submission, settings)
    results.write_json(results.results_json(report), args.out / "results.json")


def build_parser() -> argparse.ArgumentParser:
    """Every command with its arguments, and (as `handler`) the function that runs it."""
    parser = argparse.ArgumentParser(
        prog="python -m mnist_grader",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    grade = command(
        "grade", _run_grade, "grade a notebook, a folder of notebooks or a Gradescope export"
    )
    grade.add_argument("submissions", type=Path)
    grade.add_argument("--out", type=Path, required=True, help="where the results go")
    grade.add_argument("--jobs", type=int, default=1, help="submissions graded at once")
    grade.add_argument(
        "--cold-kernels",
        action="store_true",
        help="start every kernel as a new Python instead of forking it from a template that "
        "imported TensorFlow once for the batch (warm kernels, the default for 2+ submissions)",
    )
    _add_settings(grade)

    report = command("report", _run_report, "rebuild the class report from results.json")
    report.add_argument("out", type=Path, help="a folder `grade --out` wrote")

    assign = command("assign", _run_assign, "rebuild assignment/ and solutions/")
    _add_dataset(assign)

    autograder = command("autograder", _run_autograder, "build the Gradescope zip")
    _add_dataset(autograder)
    autograder.add_argument("--data-file", type=Path, default=None)
    autograder.add_argument("--target", type=Path, default=None, help="default: the dataset's")
    autograder.add_argument(
        "--hidden-visibility",
        choices=results.VISIBILITIES,
        default=results.GRADESCOPE_HIDDEN_VISIBILITY,
        help="when students see the hidden checks' results on Gradescope (and, unless visible, "
        "their autograded total, which Gradescope holds with them): after_due_date (default), "
        "after_published (when you publish the grades), hidden (never) or visible (at once); "
        "the public checks are always visible",
    )

    gradescope = command("gradescope", _run_gradescope, "grade a Gradescope upload")
    gradescope.add_argument("--root", type=Path, default=Path("/autograder"))
    _add_settings(gradescope, with_paths=False)

    one = command("grade-one", _run_grade_one, "grade one file in this process")
    one.add_argument("submission", type=Path)
    one.add_argument("--out", type=Path, required=True)
    one.add_argument("--slot", type=int, default=0, help="which sandbox uid (a batch's job slot)")
    one.add_argument("--kernel-template", default="", help="a warm-kernel template's socket")
    one.add_argument(
        "--progress-fd",
        type=int,
        default=None,
        help="a pipe to tell the batch's progress bar what runs now (mnist_grader.progress)",
    )
    _add_settings(one)
    return parser


def commands() -> list[str]:
    """The command names, from the parser itself (the docs test checks each is documented)."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(subparsers.choices)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.handler(args)
