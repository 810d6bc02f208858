"""Commands: `python -m mnist_grader COMMAND --help`.

grade SUBMISSIONS --out DIR   grade a notebook, a folder of them or a Gradescope export
report DIR                    rebuild DIR's class report (report.html/.json) from its results
assign                        rebuild assignment/ and solutions/ from the master notebook
autograder                    build autograder/autograder.zip for Gradescope
(each takes --dataset fashion_mnist for the Fashion-MNIST variant, built under build/)
gradescope --root DIR         what the zip's run_autograder calls (grade one upload)
grade-one FILE --out DIR      grade one file in this process (what `grade` runs per file)
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import variants
from .settings import Settings, flag_help, flag_settings

COMMANDS = ("grade", "report", "assign", "autograder", "gradescope", "grade-one")


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_grader",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    grade = commands.add_parser(
        "grade", help="grade a notebook, a folder of notebooks or a Gradescope export"
    )
    grade.add_argument("submissions", type=Path)
    grade.add_argument("--out", type=Path, required=True)
    grade.add_argument("--jobs", type=int, default=1, help="submissions graded at once")
    grade.add_argument(
        "--cold-kernels",
        action="store_true",
        help="start every kernel as a new Python instead of forking it from a template that "
        "imported TensorFlow once for the batch (warm kernels, the default for 2+ submissions)",
    )
    _add_settings(grade)

    report = commands.add_parser("report", help="rebuild the class report from results.json")
    report.add_argument("out", type=Path, help="a folder `grade --out` wrote")

    assign = commands.add_parser("assign", help="rebuild assignment/ and solutions/")
    _add_dataset(assign)

    autograder = commands.add_parser("autograder", help="build the Gradescope zip")
    _add_dataset(autograder)
    autograder.add_argument("--data-file", type=Path, default=None)
    autograder.add_argument("--target", type=Path, default=None, help="default: the dataset's")

    gradescope = commands.add_parser("gradescope", help="grade a Gradescope upload")
    gradescope.add_argument("--root", type=Path, default=Path("/autograder"))
    _add_settings(gradescope, with_paths=False)

    one = commands.add_parser("grade-one", help="grade one file in this process")
    one.add_argument("submission", type=Path)
    one.add_argument("--out", type=Path, required=True)
    one.add_argument("--slot", type=int, default=0)
    one.add_argument("--kernel-template", default="", help="a warm-kernel template's socket")
    _add_settings(one)

    args = parser.parse_args(argv)
    if args.command == "grade":
        from . import batch, checks, results

        settings = _settings(args)
        if not args.submissions.exists():
            sys.exit(f"{args.submissions}: no such file or folder")
        from .gradescope_export import BadExport

        try:
            rows = batch.grade_batch(
                args.submissions,
                args.out,
                settings,
                jobs=max(1, args.jobs),
                warm=not args.cold_kernels,
            )
        except BadExport as problem:
            sys.exit(f"{args.submissions}: {problem}")
        names = checks.question_names(settings.checks_dir / "tests")
        print(results.table(rows, names))
        print(f"\nresults: {args.out}/<submission>/results.json, {args.out}/gradebook.csv")
        print(f"class report: {args.out}/report.html")
        if (args.out / "gradescope_scores.csv").is_file():
            print(f"scores to upload: {args.out}/gradescope_scores.csv, canvas_scores.csv")
            unnamed = [row["file"] for row in rows if not (row["sid"] or row["email"])]
            if unnamed:
                print(f"not in them (no SID or email in the export): {', '.join(unnamed)}")
    elif args.command == "report":
        from . import report

        if not any(args.out.glob("*/results.json")):
            sys.exit(f"{args.out}: no <submission>/results.json here (grade into it first)")
        report.write(args.out)
        print(f"class report: {args.out}/report.html, {args.out}/report.json")
    elif args.command == "assign":
        from . import assign

        variant = variants.get(args.dataset)
        assign.build(variant)
        print(f"rebuilt {variant.assignment_dir} and {variant.solutions_dir} ({variant.name})")
    elif args.command == "autograder":
        from . import package

        variant = variants.get(args.dataset)
        data_file = args.data_file or _default_data(variant.checks_dir)
        target = args.target or variant.zip_path
        print(f"built {package.build_zip(data_file, variant.checks_dir, target)}")
    elif args.command == "gradescope":
        from . import package

        package.grade_gradescope(args.root, lambda c, d: _settings(args, c, d))
    elif args.command == "grade-one":
        from . import engine, results

        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s"
        )  # the grading child's stderr is the submission's grader.log (mnist_grader.batch)
        settings = _settings(args)
        settings.slot = args.slot
        settings.kernel_template = args.kernel_template
        report = engine.grade_submission(args.submission, settings)
        results.write_json(results.results_json(report), args.out / "results.json")
