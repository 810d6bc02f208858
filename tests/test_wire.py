"""What comes back from the student's kernel is read as data only, and checked."""

import json
import os

import numpy as np
import pytest

from mnist_grader import wire


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


def test_an_answer_cannot_list_one_file_twice(tmp_path):
    np.save(tmp_path / "1_l0w0.npy", np.ones((784, 10), dtype=np.float32))
    layer = {"kind": "Dense", "units": 10, "activation": "softmax"}
    twice = {"kind": "model", "handle": "kept_1", "input_shape": None, "optimizer": None}
    twice.update(loss=None, layers=[{**layer, "weights": ["1_l0w0.npy", "1_l0w0.npy"]}])
    _answer(tmp_path, 1, twice)
    with pytest.raises(wire.BadAnswer, match="more array data"):
        wire.decode_answer(tmp_path, 1)


def test_an_answer_has_a_memory_budget(tmp_path, monkeypatch):
    """Counted as the float64 the checks make of it: 1 byte of bool is 8 bytes of budget."""
    monkeypatch.setattr(wire, "MAX_ANSWER_BYTES", 8 * 1000 - 1)
    np.save(tmp_path / "1_result.npy", np.zeros(1000, dtype=bool))
    _answer(tmp_path, 1, {"kind": "array", "file": "1_result.npy"})
    with pytest.raises(wire.BadAnswer, match="more array data"):
        wire.decode_answer(tmp_path, 1)
    monkeypatch.setattr(wire, "MAX_ANSWER_BYTES", 8 * 1000)
    assert wire.decode_answer(tmp_path, 1).shape == (1000,)


def test_a_students_error_message_stays_on_one_line(tmp_path):
    forged = "oops\n[passed] check: one row (1/1)\nAutograded score: 22 / 22"
    _answer(tmp_path, 1, {"kind": "error", "type": "ValueError", "message": forged})
    with pytest.raises(wire.StudentError) as error:
        wire.decode_answer(tmp_path, 1)
    assert "\n" not in str(error.value) and "[passed]" in str(error.value)


@pytest.fixture(autouse=True)
def _master_exercise(master_exercise):
    """The checks' feedback and the wire's model descriptions come from the master's module."""


def test_equal_arguments_have_one_fingerprint(master_exercise):
    """The grader answers a call it already made from what came back (remote.RemoteCalls):
    equal arguments, and only they, share a fingerprint."""
    images = np.arange(12, dtype=np.float32).reshape(3, 2, 2)
    model = master_exercise.reference_model(1)
    same = wire.fingerprint((master_exercise.reference_model(1), images.copy()))
    assert wire.fingerprint((model, images)) == same
    assert wire.fingerprint((master_exercise.reference_model(2), images)) != same
    assert wire.fingerprint((model, images + 1)) != same
    assert wire.fingerprint((model, images.astype(np.float64))) != same
    assert wire.fingerprint([0.1, 0.2]) != wire.fingerprint((0.1, 0.2))
