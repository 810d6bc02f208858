"""`python -m tests.mutants` runs its tests in scratch copies, which have no ../shared beside them:
they find the data where the Makefile does, with or without MNIST_NPZ set."""

import tempfile
from pathlib import Path

from tests import mutants


def test_the_scratch_copies_find_the_data_without_mnist_npz(monkeypatch):
    monkeypatch.delenv("MNIST_NPZ", raising=False)
    with tempfile.TemporaryDirectory(prefix="mnist-mutants-test-") as scratch:
        tree = mutants.scratch_copy(Path(scratch))
        passed, why, _ = mutants.run_tests(
            tree, ["tests/test_data_loader.py", "-k", "environment_variable_comes_first"], ()
        )
    assert passed, why
