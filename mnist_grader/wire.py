"""Grader-side half of the wire: encode arguments for the sandbox, decode and validate answers.

Everything read back from the sandbox was written by code the student controls, so it is read as
data only (JSON, .npy without pickles, regular files of bounded size) and checked for type before
it becomes a ModelSpec, a FigureSpec, an array or a plain value.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np

MAX_JSON_BYTES = 2 * 2**20
MAX_ARRAY_BYTES = 128 * 2**20
# All the arrays of one answer, counted as the float64 the checks turn them into: a Dense-128
# model is 0.8 MB, the whole training set's probabilities 4.8 MB. Without a budget one file
# listed many times, or a bool array made float64, would fill the grader's memory.
MAX_ANSWER_BYTES = 256 * 2**20


class BadAnswer(Exception):
    """The sandbox sent something that is not the data the protocol allows."""

    raised_by_grader = True  # the checks report it as it is (mnist_exercise.call_student)


class StudentError(Exception):
    """The student's function raised an exception: `student_words` is "ValueError: bad axis",
    which the checks show as the notebook would show the same error."""

    def __init__(self, student_words: str):
        super().__init__(student_words)
        self.student_words = student_words


class Opaque:
    """A value the wire cannot carry (a string of some unknown class, say): its type and repr.
    Shown by its repr, as the notebook shows the value itself (mnist_exercise.returned)."""

    def __init__(self, type_name: str, text: str):
        self.type_name, self.text = type_name, text

    def __repr__(self) -> str:
        return self.text


# -- encoding (grader -> sandbox) ---------------------------------------------------------------

# The dataset's arrays as the grader loaded them (memory-mapped from the shared read-only copy):
# sent by name, so the sandbox maps the same file instead of receiving a 47 MB copy.
DATASET_ARRAYS: dict[int, tuple[np.ndarray, str]] = {}


def register_dataset(arrays: dict[str, np.ndarray]) -> None:
    DATASET_ARRAYS.update({id(array): (array, name) for name, array in arrays.items()})


def fingerprint(value) -> str:
    """A digest of arguments the checks send (arrays by their dtype, shape and bytes; a model
    description by its layers), equal for equal arguments: the same call is answered once."""
    import hashlib

    digest = hashlib.sha256()

    def feed(value):
        digest.update(type(value).__name__.encode() + b"\0")
        handle = getattr(value, "handle", None)
        known = DATASET_ARRAYS.get(id(value))
        if handle is not None:
            digest.update(str(handle).encode())
        elif known is not None and known[0] is value:  # sent by name: named here too
            digest.update(known[1].encode())
        elif isinstance(value, np.ndarray):
            digest.update(f"{value.dtype}{value.shape}".encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        elif type(value).__name__ == "ModelSpec":
            feed((value.input_shape, value.loss))
            for layer in value.layers:
                feed((layer.kind, layer.units, layer.activation, *layer.weights))
        elif isinstance(value, (tuple, list)):
            digest.update(f"{len(value)}[".encode())
            for item in value:
                feed(item)
        else:
            digest.update(repr(value).encode() + b"\0")

    feed(value)
    return digest.hexdigest()


def encode_arguments(args, inbox: Path, call_id: int) -> None:
    counter = iter(range(10**6))

    def encode(value):
        handle = getattr(value, "handle", None)
        if handle is not None:
            return {"__kept__": handle}
        known = DATASET_ARRAYS.get(id(value))
        if known is not None and known[0] is value:
            return {"__data__": known[1]}
        if isinstance(value, np.ndarray):
            name = f"{call_id}_{next(counter)}.npy"
            np.save(inbox / name, value)
            return {"__array__": name}
        if type(value).__name__ == "ModelSpec":  # a reference model, built in the kernel
            return {"__model__": _model_message(value, encode)}
        if isinstance(value, tuple):
            return {"__tuple__": [encode(v) for v in value]}
        if isinstance(value, list):
            return [encode(v) for v in value]
        if isinstance(value, (np.integer, np.floating)):
            return value.item()
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise TypeError(f"cannot send a {type(value).__name__} to the sandbox")

    (inbox / f"{call_id}.json").write_text(json.dumps([encode(a) for a in args]))


def _model_message(spec, encode) -> dict:
    """A model the checks chose (mnist_exercise.reference_model) as data: the kernel builds it
    with mnist_exercise.keras_model before calling the student's function on it."""
    return {
        "input_shape": encode(tuple(spec.input_shape)),
        "loss": spec.loss,
        "layers": [
            {
                "kind": layer.kind,
                "units": layer.units,
                "activation": layer.activation,
                "weights": [encode(np.asarray(w)) for w in layer.weights],
            }
            for layer in spec.layers
        ],
    }


# -- decoding (sandbox -> grader) ---------------------------------------------------------------


def _read_regular_file(path: Path, limit: int) -> bytes:
    """Read a file the sandbox wrote: a regular file (no links, no fifos), at most `limit` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise BadAnswer(f"missing answer file {path.name}") from error
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            raise BadAnswer(f"answer file {path.name} is not a small regular file")
        return handle.read(limit + 1)


def _safe_name(name) -> str:
    if not isinstance(name, str) or "/" in name or name.startswith("."):
        raise BadAnswer("bad file name in answer")
    return name


class _Budget:
    """The arrays one answer may still bring: each file once, MAX_ANSWER_BYTES in all."""

    def __init__(self):
        self.names: set[str] = set()
        self.left = MAX_ANSWER_BYTES

    def take(self, name: str, array: np.ndarray) -> None:
        self.left -= array.size * 8
        if name in self.names or self.left < 0:
            raise BadAnswer("an answer with more array data than the checks need")
        self.names.add(name)


def _array(outbox: Path, name, budget: _Budget) -> np.ndarray:
    import io

    data = _read_regular_file(outbox / _safe_name(name), MAX_ARRAY_BYTES)
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as error:
        raise BadAnswer("an array file that numpy cannot read") from error
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        raise BadAnswer("an array that is not numbers")
    budget.take(name, array)
    return array


def _plain(value):
    """JSON from the sandbox -> Python values, with tuples restored; nothing else allowed."""
    if isinstance(value, dict):
        if set(value) != {"__tuple__"} or not isinstance(value["__tuple__"], list):
            raise BadAnswer("unexpected object in a JSON answer")
        return tuple(_plain(v) for v in value["__tuple__"])
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise BadAnswer("unexpected JSON value")


def _typed(value, types, what: str):
    if not isinstance(value, types) or isinstance(value, bool) and bool not in types:
        raise BadAnswer(f"{what} has the wrong type")
    return value


def _model(message: dict, outbox: Path, budget: _Budget):
    import mnist_exercise as ex

    layers = []
    for layer in _typed(message.get("layers"), (list,), "layers"):
        _typed(layer, (dict,), "layer")
        layers.append(
            ex.LayerSpec(
                kind=_typed(layer.get("kind"), (str,), "layer kind"),
                units=_typed(layer.get("units"), (int, type(None)), "units"),
                activation=_typed(layer.get("activation"), (str, type(None)), "activation"),
                weights=[
                    _array(outbox, name, budget).astype(np.float64)
                    for name in _typed(layer.get("weights"), (list,), "weights")
                ],
            )
        )
    shape = _plain(message.get("input_shape"))
    if shape is not None and not (
        isinstance(shape, tuple) and all(n is None or type(n) is int for n in shape)
    ):
        raise BadAnswer("input shape")
    return ex.ModelSpec(
        input_shape=shape,
        layers=layers,
        optimizer=_typed(message.get("optimizer"), (str, type(None)), "optimizer"),
        loss=_typed(message.get("loss"), (str, type(None)), "loss"),
        handle=_typed(message.get("handle"), (str,), "handle"),
        config=_typed(message.get("config"), (str, type(None)), "config"),
    )


def _floats(values, count: int | None, what: str) -> tuple:
    values = _typed(values, (list,), what)
    if count is not None and len(values) != count:
        raise BadAnswer(what)
    return tuple(float(_typed(v, (int, float), what)) for v in values)


def _figure(message: dict, outbox: Path, budget: _Budget):
    import mnist_exercise as ex

    axes = []
    for ax in _typed(message.get("axes"), (list,), "axes"):
        _typed(ax, (dict,), "axes")
        bars = [
            ex.BarSpec(
                x=_floats([bar.get("x")], 1, "bar x")[0],
                height=_floats([bar.get("height")], 1, "bar height")[0],
                facecolor=_floats(bar.get("facecolor"), 4, "bar colour"),
                edgecolor=_floats(bar.get("edgecolor"), 4, "bar colour"),
                hatch=_typed(bar.get("hatch"), (str, type(None)), "hatch"),
                label=_typed(bar.get("label"), (str, type(None)), "label"),
            )
            for bar in _typed(ax.get("bars"), (list,), "bars")
            if _typed(bar, (dict,), "bar")
        ]
        images = [
            _array(outbox, name, budget) for name in _typed(ax.get("images"), (list,), "images")
        ]
        title = _typed(ax.get("title"), (str,), "title")
        orientation = ax.get("orientation")
        if orientation not in ("vertical", "horizontal"):
            raise BadAnswer("bar orientation")
        box = _floats(ax.get("box"), 4, "axes position")
        axes.append(ex.AxesSpec(images, bars, title, orientation, box))
    return ex.FigureSpec(
        axes=axes,
        handle=_typed(message.get("handle"), (str,), "handle"),
        inside=_typed(message.get("inside"), (str, type(None)), "inside"),
    )


def one_line(text, limit: int) -> str:
    """Text from the sandbox as one line: it can't pose as lines of the grade report."""
    return " ".join(str(text).split())[:limit]


def decode_answer(outbox: Path, call_id: int):
    """The value the sandbox sent for `call_id`; raises StudentError if the student code raised."""
    try:
        message = json.loads(_read_regular_file(outbox / f"{call_id}.json", MAX_JSON_BYTES))
    except ValueError as error:
        raise BadAnswer("an answer that is not JSON") from error
    kind = _typed(message, (dict,), "answer").get("kind")
    if kind == "none":
        return None
    if kind == "json":
        return _plain(message.get("value"))
    budget = _Budget()
    if kind == "array":
        return _array(outbox, message.get("file"), budget)
    if kind == "model":
        return _model(message, outbox, budget)
    if kind == "figure":
        return _figure(message, outbox, budget)
    if kind == "other":
        return Opaque(one_line(message.get("type"), 80), one_line(message.get("repr"), 1000))
    if kind == "error":
        raise StudentError(
            f"{one_line(message.get('type'), 80)}: {one_line(message.get('message'), 300)}"
        )
    raise BadAnswer(f"unknown answer kind {kind!r}")
