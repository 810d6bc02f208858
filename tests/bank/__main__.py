"""python -m tests.bank FOLDER [--dataset D] [--demo]: write the bank's notebooks (and
expected.json), or only the demo class's; python -m tests.bank --markdown FILE: write the bank's
table (docs/bank.md)."""

import argparse
from pathlib import Path

from . import BANKS, DEMO, build, markdown

parser = argparse.ArgumentParser(prog="python -m tests.bank", description=__doc__)
parser.add_argument("folder", type=Path, nargs="?", default=Path("build/bank"))
parser.add_argument("--dataset", choices=sorted(BANKS), default="mnist")
parser.add_argument(
    "--demo", action="store_true", help="only the demo class (`make grade` with no arguments)"
)
parser.add_argument("--markdown", type=Path, help="write the bank's table there instead")
args = parser.parse_args()
if args.markdown:
    args.markdown.write_text(markdown())
    print(f"wrote {args.markdown}")
else:
    paths = build(args.folder, args.dataset, only=DEMO if args.demo else None)
    print(f"wrote {len(paths)} submissions to {args.folder}")
