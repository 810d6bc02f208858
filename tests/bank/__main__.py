"""python -m tests.bank FOLDER [--dataset D]: write the bank's notebooks (and expected.json)."""

import argparse
from pathlib import Path

from . import BANKS, build

parser = argparse.ArgumentParser(prog="python -m tests.bank", description=__doc__)
parser.add_argument("folder", type=Path, nargs="?", default=Path("build/bank"))
parser.add_argument("--dataset", choices=sorted(BANKS), default="mnist")
args = parser.parse_args()
paths = build(args.folder, args.dataset)
print(f"wrote {len(paths)} submissions to {args.folder}")
