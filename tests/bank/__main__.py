"""python -m tests.bank FOLDER: write the bank's notebooks (and expected.json) into FOLDER."""

import sys
from pathlib import Path

from . import build

paths = build(Path(sys.argv[1] if len(sys.argv) > 1 else "build/bank"))
print(f"wrote {len(paths)} submissions to {paths[0].parent}")
