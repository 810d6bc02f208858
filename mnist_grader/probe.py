"""Kernel-side half of the grader's wire: its source is run as a cell after the student's cells.

The grader never imports this module; it sends the text. In the student's kernel it creates
`__grader_probe__`, which calls a student function on arguments the grader wrote into `in/`
(.npy arrays, JSON) and writes what came back into `out/` as plain data: .npy arrays (no pickles)
and JSON. Keras models and matplotlib figures travel as their descriptions (mnist_exercise), and
are kept under a handle so that a later call can pass them back. The grader validates all of it:
nothing written here is trusted.
"""

import inspect
import json
import os
import sys

import numpy as np


class _GraderProbe:
    def __init__(self, folder, namespace):
        self.inbox = os.path.join(folder, "in")
        self.outbox = os.path.join(folder, "out")
        self.namespace = namespace
        self.kept = {}

    # -- arguments ----------------------------------------------------------------------------
    def _decode(self, value):
        if isinstance(value, dict) and "__tuple__" in value:
            return tuple(self._decode(v) for v in value["__tuple__"])
        if isinstance(value, dict) and "__kept__" in value:
            return self.kept[value["__kept__"]]
        if isinstance(value, dict) and value.get("__data__") in ("x_train", "y_train", "x_test"):
            import mnist_exercise

            folder = os.environ[mnist_exercise.DATA_ENV_VAR]  # the grader's read-only .npy copy
            return np.load(os.path.join(folder, value["__data__"] + ".npy"), mmap_mode="r")
        if isinstance(value, dict) and "__model__" in value:  # a model the checks chose
            import mnist_exercise

            model = value["__model__"]
            layers = [
                mnist_exercise.LayerSpec(
                    layer["kind"],
                    layer["units"],
                    layer["activation"],
                    [self._decode(w) for w in layer["weights"]],
                )
                for layer in model["layers"]
            ]
            spec = mnist_exercise.ModelSpec(
                self._decode(model["input_shape"]), layers, None, model["loss"]
            )
            return mnist_exercise.keras_model(spec)
        if isinstance(value, dict) and "__array__" in value:
            return np.load(os.path.join(self.inbox, value["__array__"]), allow_pickle=False)
        if isinstance(value, list):
            return [self._decode(v) for v in value]
        return value

    def _arguments(self, call_id):
        with open(os.path.join(self.inbox, f"{call_id}.json")) as handle:
            return [self._decode(v) for v in json.load(handle)]

    # -- results ------------------------------------------------------------------------------
    def _jsonable(self, value):
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, (np.integer, np.floating, np.bool_)):
            return value.item()
        if isinstance(value, tuple):
            return {"__tuple__": [self._jsonable(v) for v in value]}
        if isinstance(value, list):
            return [self._jsonable(v) for v in value]
        raise TypeError(type(value).__name__)

    def _save_array(self, call_id, name, array):
        filename = f"{call_id}_{name}.npy"
        np.save(os.path.join(self.outbox, filename), np.ascontiguousarray(array))
        return filename

    def _describe(self, call_id, value):
        import mnist_exercise

        if value is None:
            return {"kind": "none"}
        model = mnist_exercise.describe_model(value)
        if model is not None:
            handle = f"kept_{call_id}"
            self.kept[handle] = value
            layers = []
            for i, layer in enumerate(model.layers):
                weights = [
                    self._save_array(call_id, f"l{i}w{j}", w) for j, w in enumerate(layer.weights)
                ]
                layers.append(
                    dict(
                        kind=layer.kind,
                        units=layer.units,
                        activation=layer.activation,
                        weights=weights,
                    )
                )
            return {
                "kind": "model",
                "handle": handle,
                "layers": layers,
                "input_shape": self._jsonable(model.input_shape),
                "optimizer": model.optimizer,
                "loss": model.loss,
                "config": model.config,
            }
        is_figure = "matplotlib" in str(type(value)) or mnist_exercise.figure_inside(value)
        figure = mnist_exercise.describe_figure(value) if is_figure else None
        if figure is not None:
            handle = f"kept_{call_id}"
            self.kept[handle] = value
            axes = []
            for i, ax in enumerate(figure.axes):
                images = [
                    self._save_array(call_id, f"a{i}i{j}", np.ma.getdata(image))
                    for j, image in enumerate(ax.images)
                ]
                bars = [
                    dict(
                        x=b.x,
                        height=b.height,
                        facecolor=list(b.facecolor),
                        edgecolor=list(b.edgecolor),
                        hatch=b.hatch,
                        label=b.label,
                    )
                    for b in ax.bars
                ]
                axes.append(
                    dict(
                        images=images,
                        bars=bars,
                        title=ax.title,
                        orientation=ax.orientation,
                        box=list(ax.box),
                    )
                )
            return {"kind": "figure", "handle": handle, "axes": axes, "inside": figure.inside}
        if isinstance(value, (tuple, list, bool, int, float, str, np.generic)):
            try:
                return {"kind": "json", "value": self._jsonable(value)}
            except TypeError:
                pass
        try:
            array = np.asarray(value)
        except Exception:
            array = None
        if array is not None and array.dtype.kind in "biuf":
            return {"kind": "array", "file": self._save_array(call_id, "result", array)}
        return {"kind": "other", "type": type(value).__name__, "repr": repr(value)[:1000]}

    def _answer(self, call_id, message):
        path = os.path.join(self.outbox, f"{call_id}.json")
        with open(path + ".part", "w") as handle:
            json.dump(message, handle)
        os.replace(path + ".part", path)

    # -- what the grader calls ----------------------------------------------------------------
    def kinds(self, call_id, names):
        """Which of `names` the notebook defines, and whether each is a function."""
        kinds = []
        for name in names:
            if name not in self.namespace:
                kinds.append([name, "missing"])
            else:
                value = self.namespace[name]  # a Keras model is callable too: only routines count
                kinds.append([name, "function" if inspect.isroutine(value) else "value"])
        self._answer(call_id, {"kind": "json", "value": kinds})

    def fetch(self, call_id, name):
        self._answer(call_id, self._describe(call_id, self.namespace.get(name)))

    def call(self, call_id, name):
        function = self.namespace.get(name)
        arguments = self._arguments(call_id)  # outside the try: a failure here is not the student's
        # Figures the cells left open closed, as Jupyter's inline backend closes them after each
        # cell: pyplot calls in the function (plt.subplot without plt.figure) then draw into a
        # new figure in the grader too, as they do in the notebook.
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            pyplot.close("all")
        try:
            result = function(*arguments)
        except BaseException as error:  # noqa: B036 - report even SystemExit to the grader
            message = {"kind": "error", "type": type(error).__name__, "message": str(error)[:500]}
        else:
            message = self._describe(call_id, result)
        self._answer(call_id, message)
