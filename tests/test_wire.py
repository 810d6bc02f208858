"""What comes back from the student's kernel is read as data only, and checked."""

import json
import os
import sys

import numpy as np
import pytest

from mnist_grader import MASTER_DIR, wire

sys.path.insert(0, str(MASTER_DIR))


def _answer(outbox, call_id, message):
    (outbox / f"{call_id}.json").write_text(json.dumps(message))


def test_arrays_and_tuples_round_trip(tmp_path):
    np.save(tmp_path / "1_result.npy", np.arange(6).reshape(2, 3))
    _answer(tmp_path, 1, {"kind": "array", "file": "1_result.npy"})
    assert wire.decode_answer(tmp_path, 1).tolist() == [[0, 1, 2], [3, 4, 5]]
    _answer(tmp_path, 2, {"kind": "json", "value": {"__tuple__": [60000, 28, 28]}})
    assert wire.decode_answer(tmp_path, 2) == (60000, 28, 28)


def test_pickled_arrays_are_refused(tmp_path):
    np.save(tmp_path / "1_result.npy", np.array([object()], dtype=object), allow_pickle=True)
    _answer(tmp_path, 1, {"kind": "array", "file": "1_result.npy"})
    with pytest.raises(wire.BadAnswer):
        wire.decode_answer(tmp_path, 1)


def test_links_and_paths_outside_the_outbox_are_refused(tmp_path):
    secret = tmp_path / "secret.npy"
    np.save(secret, np.ones(3))
    outbox = tmp_path / "out"
    outbox.mkdir()
    os.symlink(secret, outbox / "1_result.npy")
    _answer(outbox, 1, {"kind": "array", "file": "1_result.npy"})
    with pytest.raises(wire.BadAnswer):
        wire.decode_answer(outbox, 1)
    _answer(outbox, 2, {"kind": "array", "file": "../secret.npy"})
    with pytest.raises(wire.BadAnswer):
        wire.decode_answer(outbox, 2)


def test_student_errors_come_back_as_errors(tmp_path):
    _answer(tmp_path, 1, {"kind": "error", "type": "ValueError", "message": "bad axis"})
    with pytest.raises(wire.StudentError, match="ValueError: bad axis"):
        wire.decode_answer(tmp_path, 1)


def test_a_forged_model_description_must_be_well_typed(tmp_path):
    _answer(
        tmp_path,
        1,
        {
            "kind": "model",
            "handle": "kept_1",
            "input_shape": None,
            "optimizer": "adam",
            "loss": "x",
            "layers": [{"kind": "Dense", "units": "10", "activation": "softmax", "weights": []}],
        },
    )
    with pytest.raises(wire.BadAnswer):
        wire.decode_answer(tmp_path, 1)


def test_unknown_objects_in_json_are_refused(tmp_path):
    _answer(tmp_path, 1, {"kind": "json", "value": {"__kept__": "model"}})
    with pytest.raises(wire.BadAnswer):
        wire.decode_answer(tmp_path, 1)
