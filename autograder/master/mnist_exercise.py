"""Support code for the "first steps in computer vision" exercise (MNIST, or Fashion-MNIST).

Students import it from the notebook; the public checks and the grader use it too, so that a
check says the same thing in the notebook and in the grade report.

- `load_dataset` finds the data offline (an environment variable, then known places) and falls
  back to the Keras download only when no local copy exists.
- `expect` raises a `CheckFailed` carrying one feedback record: message / expected / got.
- `describe_model` and `describe_figure` turn a Keras model and a matplotlib figure into plain
  data (dataclasses of numbers, strings and arrays), which the checks inspect. The grader
  receives the same descriptions from the student's kernel as data and re-checks them itself,
  e.g. by recomputing the model's forward pass with numpy.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

# ---------------------------------------------------------------------------------------------
# The dataset. `make assignment DATASET=fashion_mnist` rewrites the next line; the rest follows.
# ---------------------------------------------------------------------------------------------

DATASET = "mnist"


@dataclass(frozen=True)
class DatasetInfo:
    title: str
    class_names: tuple  # what each class is called in plots and feedback, in label order
    first_test_class: int  # y_test[0]
    env_var: str  # names a local copy of the data
    known_paths: tuple  # where a local copy is looked for after the environment variable
    min_accuracy: float  # the hidden check's bar for the model trained while grading


DATASETS = {
    # The grader trains 1 epoch on 20000 images: ~93% on MNIST, ~82% on Fashion-MNIST (seeds 42,
    # 1, 2 measured); the bars leave a margin below that. Students' own 5 epochs: 97.5% and 87%.
    "mnist": DatasetInfo(
        title="MNIST",
        class_names=tuple(str(digit) for digit in range(10)),
        first_test_class=7,
        env_var="MNIST_NPZ",
        known_paths=(
            # beside the notebook, the course repository's shared folder (CI and instructors),
            # the Gradescope autograder tree, the Keras cache
            Path("mnist.npz"),
            Path("data") / "mnist.npz",
            Path("..") / "shared" / "datasets" / "mnist.npz",
            Path("..") / ".." / "shared" / "datasets" / "mnist.npz",
            Path("/autograder/source/data/mnist"),
            Path.home() / ".keras" / "datasets" / "mnist.npz",
        ),
        min_accuracy=0.90,
    ),
    "fashion_mnist": DatasetInfo(
        title="Fashion-MNIST",
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        first_test_class=9,
        env_var="FASHION_MNIST_DATA",
        known_paths=(
            # beside the notebook, Debian's dataset-fashion-mnist, the Gradescope autograder
            # tree, the Keras cache
            Path("fashion-mnist"),
            Path("data") / "fashion-mnist",
            Path("/usr/share/datasets/fashion-mnist"),
            Path("/autograder/source/data/fashion_mnist"),
            Path.home() / ".keras" / "datasets" / "fashion-mnist",
        ),
        min_accuracy=0.75,
    ),
}

INFO = DATASETS[DATASET]
NUM_CLASSES = len(INFO.class_names)
IMAGE_SHAPE = (28, 28)
CLASS_NAMES = list(INFO.class_names)
FIRST_TEST_CLASS = INFO.first_test_class
MIN_ACCURACY = INFO.min_accuracy
DATA_ENV_VAR = INFO.env_var
KNOWN_DATA_PATHS = list(INFO.known_paths)
ARRAYS = ("x_train", "y_train", "x_test", "y_test")
# The original IDX files (Fashion-MNIST's own release, and Debian's dataset-fashion-mnist).
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}


NAMED_CLASSES = CLASS_NAMES != [str(index) for index in range(NUM_CLASSES)]


def class_label(index: int) -> str:
    """How feedback names a class: "7" for a digit, "9 (Ankle boot)" where classes have names."""
    return f"{index} ({CLASS_NAMES[index]})" if NAMED_CLASSES else str(index)


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def data_format(path: Path) -> str | None:
    """ "npz" (Keras layout), "npy" (the grader's uncompressed folder), "idx" (the original
    gzipped IDX files), or None when `path` holds none of them."""
    if path.is_file():
        return "npz"
    if (path / "x_train.npy").is_file():
        return "npy"
    if (path / IDX_FILES["x_train"]).is_file():
        return "idx"
    return None


def find_data_file() -> Path | None:
    """The local copy to use: $DATA_ENV_VAR if set, else the first known path that has one."""
    named = os.environ.get(DATA_ENV_VAR)
    if named:
        path = Path(named).expanduser()
        if data_format(path) is None:
            raise FileNotFoundError(
                f"${DATA_ENV_VAR} names {path}, but there is no {INFO.title} data there."
            )
        return path
    return next((p for p in KNOWN_DATA_PATHS if data_format(p) is not None), None)


def _read_idx(path: Path) -> np.ndarray:
    # By hand because Keras reads these files only from its own cache folder: an IDX file is a
    # big-endian header (magic number, whose last byte is the number of dimensions, then each
    # dimension) followed by the uint8 values.
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def read_arrays(path: Path) -> dict:
    """The four arrays from a local copy in any of the formats `data_format` knows."""
    kind = data_format(path)
    if kind == "npy":  # the grader's uncompressed copy: mapped, not read
        return {
            name: np.load(path / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            for name in ARRAYS
        }
    if kind == "idx":
        return {name: _read_idx(path / IDX_FILES[name]) for name in ARRAYS}
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in ARRAYS}


def load_dataset():
    """Return ((x_train, y_train), (x_test, y_test)) as uint8 arrays, in the Keras layout."""
    path = find_data_file()
    if path is not None:
        arrays = read_arrays(path)
        return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
    try:
        import keras

        return getattr(keras.datasets, DATASET).load_data()
    except Exception as error:  # no local copy and no internet: say how to fix it
        searched = "\n".join(f"  - {p}" for p in KNOWN_DATA_PATHS)
        raise FileNotFoundError(
            f"Could not find {INFO.title}. Put a copy beside this notebook "
            f"({KNOWN_DATA_PATHS[0]}), or set ${DATA_ENV_VAR} to its path. Looked in:\n{searched}\n"
            f"and the Keras download failed: {error}"
        ) from None


@lru_cache(maxsize=1)
def exercise_data():
    """The dataset, loaded once per process (the checks use it for their expected answers)."""
    return load_dataset()


def scale_images(images) -> np.ndarray:
    """Pixel values 0..255 -> float32 in [0, 1]; images that are already floats pass unchanged."""
    images = np.asarray(images)
    if np.issubdtype(images.dtype, np.integer):
        return images.astype(np.float32) / np.float32(255)
    return images.astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------------
# Feedback: one record, used by every check
# ---------------------------------------------------------------------------------------------


@dataclass
class Feedback:
    message: str
    expected: str = ""
    got: str = ""

    def __str__(self) -> str:
        lines = [self.message]
        if self.expected:
            lines.append(f"  expected: {self.expected}")
        if self.got:
            lines.append(f"  got:      {self.got}")
        return "\n".join(lines)


class CheckFailed(AssertionError):
    """A failed check; its text is the feedback record shown to the student."""

    def __init__(self, feedback: Feedback):
        super().__init__(str(feedback))
        self.feedback = feedback


def expect(ok, message: str, expected="", got="") -> None:
    """Raise CheckFailed(message / expected / got) unless `ok` is true.

    `expected` and `got` are shown as given when they are text (a description such as "no
    bars"), and in Python's own words otherwise: pass `returned(value)` for what a student's
    function returned."""
    if not ok:
        raise CheckFailed(Feedback(message, _short(expected), _short(got)))


def _short(value, limit: int = 200) -> str:
    """One line (a value from student code must not pose as lines of the report), shortened."""
    text = " ".join((value if isinstance(value, str) else returned(value)).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain(value):
    """NumPy scalars as the Python numbers they hold, inside tuples and lists too: the grader
    receives them that way, and a check must say the same in the notebook and in the grader."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def returned(value) -> str:
    """What a student's function returned, in Python's own words: None, 10, (28, 28, 60000),
    'SGD', array([3, 1, 4]); an array too large to show, by its shape and type."""
    if isinstance(value, np.ndarray):
        if value.size <= 20:
            return " ".join(repr(value).split())
        return f"an array of shape {tuple(int(n) for n in value.shape)} ({value.dtype})"
    if isinstance(value, ModelSpec):
        return "a Keras model"
    if isinstance(value, FigureSpec):
        return "a matplotlib Figure"
    return repr(_plain(value))


def error_words(error: BaseException) -> str:
    """An exception as the student's code raised it: "ValueError: bad axis". In the grader the
    error arrives from the kernel as text (`student_words`); in the notebook it is the error."""
    words = getattr(error, "student_words", None)
    return words if isinstance(words, str) else f"{type(error).__name__}: {error}"


def _raised_by_grader(error: BaseException) -> bool:
    """The grader's own problems (a call that ran out of time, a lost kernel) carry this mark:
    they are reported as they are, not as something the student's code did. So does running
    out of memory here, in the checks' own process (a student's function that does raises
    something else in the grader: the kernel's error, by name)."""
    return isinstance(error, MemoryError) or getattr(error, "raised_by_grader", False) is True


@contextlib.contextmanager
def _errors_as_feedback(message: str):
    """An error raised inside becomes CheckFailed(message, got="ValueError: ..."), unless it is
    a failed check already or the grader's own problem."""
    try:
        yield
    except CheckFailed:
        raise
    except Exception as error:
        if _raised_by_grader(error):
            raise
        raise CheckFailed(Feedback(message, got=_short(error_words(error), 300))) from None


def call_student(function, name: str, *args):
    """Call the student's `name` (a function, or the grader's stand-in for it) on `args`.

    A missing function (None: otter passes None for a name the notebook lacks, and so does the
    grader), a non-function, or an error raised inside it become one feedback record, the same
    in the notebook and in the grader."""
    expect(
        function is not None,
        f"`{name}` is not defined in your notebook (did the cell that defines it run without "
        "errors?).",
        f"the function {name}",
        None,
    )
    expect(callable(function), f"`{name}` should be a function.", f"the function {name}", function)
    with _errors_as_feedback(f"Your function {name}() raised an error when the check called it."):
        return function(*args)


def student_check(check):
    """Every check_* function: whatever goes wrong inside it reaches the student as feedback,
    never as a traceback from this module (the notebook shows tracebacks, the grader does not)."""

    @functools.wraps(check)
    def run(*args, **kwargs):
        with _errors_as_feedback("The check could not use what your code returned."):
            return check(*args, **kwargs)

    return run


def shape_of(value) -> tuple | None:
    """The shape of an array-like result, or None when it is not one (None has no shape)."""
    if value is None or isinstance(value, (str, bytes, dict)):
        return None
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return None
    return tuple(int(n) for n in array.shape)


def as_class(value) -> int | None:
    """One class number (an int, a NumPy integer, a 0-d integer array), else None."""
    try:
        array = np.asarray(value)
    except Exception:
        return None
    return int(array) if array.shape == () and array.dtype.kind in "iu" else None


def as_shape(value) -> tuple | None:
    """A shape given as a tuple/list of whole numbers, normalised to a tuple of ints."""
    if isinstance(value, (tuple, list)) and all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in value
    ):
        return tuple(int(n) for n in value)
    return None


def check_seed() -> int | None:
    """The seed of the hidden checks' random inputs: set by the grader per submission (and
    recorded in its results), so that regrading a file gives the same feedback."""
    seed = os.environ.get("MNIST_CHECK_SEED")
    return int(seed) if seed and seed.isdigit() else None


def other_image_counts(rng, size: int) -> list[int]:
    """Image counts for hidden checks on other arrays: never 28, where a shape back to front,
    (28, 28, n), would equal the right one, (n, 28, 28)."""
    choices = [n for n in range(2, 50) if n not in IMAGE_SHAPE]
    return [int(n) for n in rng.choice(choices, size=size)]


# ---------------------------------------------------------------------------------------------
# Models as data
# ---------------------------------------------------------------------------------------------


@dataclass
class LayerSpec:
    kind: str  # Keras class name: "Flatten", "Dense", "Conv2D", "Softmax", ...
    units: int | None = None
    activation: str | None = None
    weights: list = field(default_factory=list)  # numpy arrays, Keras order (kernel, bias)


@dataclass
class ModelSpec:
    input_shape: tuple | None
    layers: list  # LayerSpec of every layer, in order, with models nested inside opened up
    optimizer: str | None  # the optimizer's class name, e.g. "Adam", "SGD"; None if not compiled
    loss: str | None  # e.g. "sparse_categorical_crossentropy"
    handle: str | None = None  # the grader's name for the live model in the student's kernel
    config: str | None = None  # Keras's own description of the architecture (model.to_json())
    # images -> the model's outputs, where the live model is at hand (the notebook); the grader
    # runs a description with numpy or with Keras in a process of its own (model_outputs)
    run: object = field(default=None, repr=False, compare=False)


def _name_of(thing) -> str | None:
    """A Keras optimizer/loss/activation given as a string, function or object -> snake name."""
    if thing is None:
        return None
    if isinstance(thing, str):
        name = thing
    else:
        name = getattr(thing, "name", None) or getattr(thing, "__name__", None)
        name = name if isinstance(name, str) else type(thing).__name__
    snake = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return snake.replace("__", "_")


def activation_name(activation) -> str | None:
    """An activation as Keras's config gives it, by its name: "relu", or "softmax" for
    TensorFlow's tf.nn.softmax, which Keras stores as {"class_name": "function", "config":
    "softmax_v2", ...}."""
    if isinstance(activation, dict):
        activation = activation.get("config")
    if not isinstance(activation, str):
        return _name_of(activation)
    return activation.removesuffix("_v2")


def leaf_layers(model, keras) -> list:
    """The model's layers in order, with the layers of a model used as a layer (the tutorials'
    `keras.Sequential([model, keras.layers.Softmax()])`) in its place. The grader's Keras
    evaluator (mnist_grader.evaluator) walks a rebuilt model the same way to give each layer its
    weights."""
    layers = []
    for layer in model.layers:
        layers.extend(leaf_layers(layer, keras) if isinstance(layer, keras.Model) else [layer])
    return layers


def describe_model(model) -> ModelSpec | None:
    """A Keras model as a ModelSpec (a ModelSpec passes through; anything else gives None)."""
    if isinstance(model, ModelSpec):
        return model
    keras = sys.modules.get("keras")  # a Keras model implies Keras is loaded: never import it here
    if keras is None or not isinstance(model, keras.Model):
        return None
    try:
        input_shape = tuple(model.inputs[0].shape) if model.inputs else None
    except (AttributeError, ValueError):
        input_shape = None
    layers = []
    for layer in leaf_layers(model, keras):
        try:
            config = layer.get_config()
        except Exception:  # a layer class of the student's own that cannot describe itself
            config = {}
        activation = config.get("activation")
        layers.append(
            LayerSpec(
                kind=type(layer).__name__,
                units=config.get("units"),
                activation=activation_name(activation),
                weights=[np.asarray(w) for w in layer.get_weights()],
            )
        )
    try:
        config = model.to_json()
    except Exception:  # a layer Keras cannot describe (a custom class without get_config)
        config = None
    compiled = getattr(model, "compiled", False) or getattr(model, "optimizer", None) is not None
    loss = getattr(model, "loss", None) if compiled else None
    return ModelSpec(
        input_shape=input_shape,
        layers=layers,
        optimizer=type(model.optimizer).__name__ if compiled else None,
        loss=_name_of(loss),
        config=config,
        run=lambda images: model.predict(images, batch_size=1000, verbose=0),
    )


def output_layer(spec: ModelSpec) -> tuple[LayerSpec | None, str | None]:
    """The layer that makes the model's outputs and the activation they leave it with: the last
    layer and its own activation, or a Dense layer without one followed by a softmax layer
    (keras.layers.Softmax() or keras.layers.Activation("softmax")), which computes the same."""
    layers = [layer for layer in spec.layers if layer.kind != "InputLayer"]
    if not layers:
        return None, None
    last = layers[-1]
    before = layers[-2] if len(layers) > 1 else None
    if (
        last.kind in ("Softmax", "Activation")
        and before is not None
        and before.kind == "Dense"
        and before.activation in (None, "linear")
    ):
        return before, "softmax" if last.kind == "Softmax" else last.activation
    return last, last.activation


def _activate(name: str | None, values: np.ndarray) -> np.ndarray:
    if name in (None, "linear"):
        return values
    if name == "relu":
        return np.maximum(values, 0)
    if name == "softmax":
        shifted = np.exp(values - values.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-values))
    if name == "tanh":
        return np.tanh(values)
    raise ValueError(f"activation {name!r}")


NUMPY_LAYERS = ("InputLayer", "Flatten", "Dense", "Dropout")
NUMPY_ACTIVATIONS = (None, "linear", "relu", "softmax", "sigmoid", "tanh")


def numpy_can_run(spec: ModelSpec) -> bool:
    """Whether `forward` gives this model's outputs as Keras would (tests/test_evaluator.py
    proves it on every kind of model it accepts): Flatten, Dense (with a bias) and Dropout
    layers with activations `forward` knows, every weight of exactly the shape its place in the
    model gives it (a bias of another shape would broadcast into a huge array), and 10 outputs.
    Other models are run by Keras itself (model_outputs)."""
    shape = IMAGE_SHAPE
    for layer in spec.layers:
        if layer.kind not in NUMPY_LAYERS:
            return False
        if layer.kind == "Flatten":
            shape = (int(np.prod(shape)),)
        elif layer.kind == "Dense":
            if layer.activation not in NUMPY_ACTIVATIONS or len(layer.weights) != 2:
                return False
            if not isinstance(layer.units, int) or layer.units < 1:
                return False
            kernel, bias = (tuple(np.shape(w)) for w in layer.weights)
            if kernel != (shape[-1], layer.units) or bias != (layer.units,):
                return False
            shape = (*shape[:-1], layer.units)
        elif layer.weights:
            return False
    return shape == (NUM_CLASSES,)


def forward(spec: ModelSpec, images, batch_size: int = 1000) -> np.ndarray:
    """The model's output for `images`, computed with numpy from its weights (inference mode),
    for a model `numpy_can_run` accepts."""
    if len(images) > batch_size:  # in batches: the whole test set in float64 would be 60 MB
        return np.concatenate(
            [
                forward(spec, images[i : i + batch_size], batch_size)
                for i in range(0, len(images), batch_size)
            ]
        )
    values = scale_images(images).astype(np.float64)
    for layer in spec.layers:
        if layer.kind == "Flatten":
            values = values.reshape(len(values), -1)
        elif layer.kind == "Dense":
            kernel, bias = layer.weights
            values = _activate(layer.activation, values @ kernel + bias)
        elif layer.kind not in ("InputLayer", "Dropout"):
            raise ValueError(f"layer {layer.kind}")
    return values


class CannotRunModel(Exception):
    """The grader could not run the model: `got` says what stood in the way, in the student's
    terms ("a Lambda layer", "a layer of class MyLayer")."""

    def __init__(self, got: str):
        super().__init__(got)
        self.got = got


# The grader sets this to a function (spec, images) -> outputs that rebuilds the model from its
# Keras description and weights and runs it with Keras, in a sandboxed process of the grader's
# that runs no student code (mnist_grader.evaluator). The notebook has the live model instead.
keras_runner = None


def model_outputs(spec: ModelSpec, images) -> np.ndarray:
    """The model's outputs for `images`: the live model where there is one, else numpy for the
    models it computes exactly, else Keras in the grader's evaluator."""
    if spec.run is not None:
        return np.asarray(spec.run(images))
    if numpy_can_run(spec):
        return forward(spec, images)
    if keras_runner is None:
        raise CannotRunModel("a model that only the grader's Keras evaluator can run")
    return keras_runner(spec, images)


def reference_model(seed: int = 0, hidden_units: int = 32) -> ModelSpec:
    """A small softmax classifier with known random weights, for the checks of predict_probs:
    they judge predict_probs on this model, not on the student's (whose mistakes are build_model's
    checks' business), so one mistake costs points in one place."""
    rng = np.random.default_rng(seed)

    def dense(inputs: int, units: int, activation: str, spread: float) -> LayerSpec:
        kernel = rng.normal(0, spread, (inputs, units)).astype(np.float32)
        bias = rng.normal(0, 0.1, units).astype(np.float32)
        return LayerSpec("Dense", units, activation, [kernel, bias])

    pixels = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
    return ModelSpec(
        input_shape=(None, *IMAGE_SHAPE),
        layers=[
            LayerSpec("Flatten"),
            dense(pixels, hidden_units, "relu", 0.1),
            dense(hidden_units, NUM_CLASSES, "softmax", 0.5),
        ],
        optimizer="Adam",
        loss="sparse_categorical_crossentropy",
    )


def keras_model(spec: ModelSpec):
    """The Keras model a ModelSpec of Flatten/Dense/Dropout layers describes, with its weights
    (built where Keras runs: the notebook's kernel)."""
    import keras

    layers = [keras.Input(shape=spec.input_shape[1:])]
    for layer in spec.layers:
        if layer.kind == "Flatten":
            layers.append(keras.layers.Flatten())
        elif layer.kind == "Dense":
            layers.append(keras.layers.Dense(layer.units, activation=layer.activation))
        elif layer.kind == "Dropout":
            layers.append(keras.layers.Dropout(0.0))
    model = keras.Sequential(layers)
    for built, layer in zip(model.layers, spec.layers, strict=True):
        if layer.weights:
            built.set_weights([np.asarray(w, dtype=np.float32) for w in layer.weights])
    model.compile(optimizer="adam", loss=spec.loss or "sparse_categorical_crossentropy")
    return model


@lru_cache(maxsize=4)
def _reference_keras_model(seed: int):
    return keras_model(reference_model(seed))


def reference_argument(seed: int):
    """The reference model of `seed` to pass to predict_probs: in the notebook (where Keras is
    loaded) the Keras model itself, one per seed for all the checks (a new one per check makes
    TensorFlow trace its predict again, and warn about it in the student's check output); in the
    grader, which never loads Keras, its description, which the grader sends to the student's
    kernel to be built there by `keras_model`."""
    return _reference_keras_model(seed) if "keras" in sys.modules else reference_model(seed)


# ---------------------------------------------------------------------------------------------
# Figures as data
# ---------------------------------------------------------------------------------------------


@dataclass
class BarSpec:
    x: float  # centre, along the axis of the categories (x for ax.bar, y for ax.barh)
    height: float  # length along the axis of the values (a probability)
    facecolor: tuple
    edgecolor: tuple
    hatch: str | None
    label: str | None  # the tick label of the categories' axis at the bar, if any


@dataclass
class AxesSpec:
    images: list  # numpy arrays shown with imshow
    bars: list  # BarSpec, in the order of their position (class 0 first)
    title: str = ""
    orientation: str = "vertical"  # of its bars: "vertical" (ax.bar) or "horizontal" (ax.barh)
    box: tuple = (0.0, 0.0, 1.0, 1.0)  # where it sits in the figure: x0, y0, x1, y1 (fractions)


@dataclass
class FigureSpec:
    axes: list
    handle: str | None = None
    # How it was returned when not by itself: "a tuple of 2 items" holding it, say
    inside: str | None = None


def figure_inside(value):
    """The one matplotlib Figure in a tuple or list (`return fig, axes`), else None."""
    if not isinstance(value, (tuple, list)) or "matplotlib.figure" not in sys.modules:
        return None
    from matplotlib.figure import Figure

    figures = [item for item in value if isinstance(item, Figure)]
    return figures[0] if len(figures) == 1 else None


def _describe_bars(ax) -> tuple[list, str]:
    from matplotlib.container import BarContainer

    orientation = "vertical"
    containers = [c for c in ax.containers if isinstance(c, BarContainer)]
    if containers:
        orientation = getattr(containers[0], "orientation", None) or "vertical"
    along_y = orientation == "horizontal"
    tick_labels = ax.get_yticklabels() if along_y else ax.get_xticklabels()
    ticks = {round(float(t.get_position()[along_y]), 6): t.get_text() for t in tick_labels}
    bars = []
    for container in containers:
        for patch in container.patches:
            if along_y:
                centre, length = patch.get_y() + patch.get_height() / 2, patch.get_width()
            else:
                centre, length = patch.get_x() + patch.get_width() / 2, patch.get_height()
            bars.append(
                BarSpec(
                    x=float(centre),
                    height=float(length),
                    facecolor=tuple(float(c) for c in patch.get_facecolor()),
                    edgecolor=tuple(float(c) for c in patch.get_edgecolor()),
                    hatch=patch.get_hatch(),
                    label=ticks.get(round(float(centre), 6)),
                )
            )
    bars.sort(key=lambda bar: bar.x)
    return bars, orientation


def describe_figure(fig) -> FigureSpec | None:
    """A matplotlib Figure (alone, or the one Figure in a returned tuple or list) as a
    FigureSpec; a FigureSpec passes through; anything else gives None."""
    if isinstance(fig, FigureSpec):
        return fig
    if "matplotlib.figure" not in sys.modules:  # a Figure implies matplotlib is loaded
        return None
    from matplotlib.figure import Figure

    inside = None
    if figure_inside(fig) is not None:
        inside = f"a {type(fig).__name__} of {len(fig)} items"
        fig = figure_inside(fig)
    if not isinstance(fig, Figure):
        return None
    # Tick labels and positions are only final once drawn; no pixels are needed to read them.
    fig.draw_without_rendering()
    axes = []
    for ax in fig.axes:
        bars, orientation = _describe_bars(ax)
        images = [np.asarray(image.get_array()) for image in ax.get_images()]
        x0, y0, x1, y1 = (float(v) for v in ax.get_position().extents)
        axes.append(AxesSpec(images, bars, ax.get_title(), orientation, (x0, y0, x1, y1)))
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:  # a figure a check made: described, it need not show in the notebook
        pyplot.close(fig)
    return FigureSpec(axes=axes, inside=inside)


# ---------------------------------------------------------------------------------------------
# Checks shared by the public checks (in the notebook) and the hidden ones (in the grader)
#
# Each check judges one of the student's functions on inputs the check controls (reference
# values, never another of the student's functions' results), so that one mistake costs points
# in the question where it was made. The trained model, the end of the whole pipeline, is judged
# once, by the accuracy check in 4d.
# ---------------------------------------------------------------------------------------------

SHAPE_NAMES = (
    "the shape of the training images",
    "the shape of the training labels",
    "the shape of the test images",
)


def _is_the_class_count(got) -> bool:
    """10, or (10,): the number of classes given where the number of labels was asked for."""
    return as_class(got) == NUM_CLASSES or as_shape(got) == (NUM_CLASSES,)


def _shape_hint(got, expected: tuple, which: int) -> str:
    """The hint for the common wrong answers (rubric.md's table)."""
    shape = as_shape(got)
    if shape is not None and len(shape) > 1 and shape == expected[::-1]:
        return " The order is reversed: NumPy lists the number of images first."
    if which == 1 and _is_the_class_count(got):
        return (
            f" There is one label per image, so the label set has {expected[0]} entries; "
            f"{NUM_CLASSES} is the number of classes."
        )
    if which == 1 and as_class(got) == expected[0]:
        return f" That is the number of labels; a shape is a tuple: ({expected[0]},)."
    return ""


@student_check
def check_get_shapes(get_shapes, arrays, which: int) -> None:
    """get_shapes(x_train, y_train, x_test) must return the three shapes; check number `which`."""
    result = call_student(get_shapes, "get_shapes", *arrays)
    expect(
        isinstance(result, (tuple, list)) and len(result) == 3,
        "get_shapes should return three shapes: (train images, train labels, test images).",
        "a tuple of 3 shapes",
        result,
    )
    expected = tuple(int(n) for n in arrays[which].shape)
    got = result[which]
    hint = _shape_hint(got, expected, which)
    what = SHAPE_NAMES[which].capitalize()
    shape = as_shape(got)
    expect(
        shape is not None,
        f"{what} should be a tuple of whole numbers, like NumPy's .shape.{hint}",
        expected,
        got,
    )
    expect(shape == expected, f"{what} is not right.{hint}", expected, got)


@student_check
def check_label_count(get_shapes, arrays) -> None:
    """On other arrays: the labels' shape is (number of images,)."""
    result = call_student(get_shapes, "get_shapes", *arrays)
    expect(
        isinstance(result, (tuple, list)) and len(result) == 3,
        "get_shapes should return three shapes: (train images, train labels, test images).",
        "a tuple of 3 shapes",
        result,
    )
    expected = (len(arrays[1]),)
    got = result[1]
    hint = ""
    if _is_the_class_count(got):
        hint = f" {NUM_CLASSES} is the number of classes, not the number of labels."
    elif as_class(got) == expected[0]:
        hint = " That is the number of labels; a shape is a tuple."
    expect(
        as_shape(got) == expected,
        f"There is one label per image, so the labels' shape is (number of images,).{hint}",
        expected,
        got,
    )


def _built_model(build_model) -> ModelSpec:
    model = call_student(build_model, "build_model")
    spec = describe_model(model)
    expect(
        spec is not None,
        "build_model() should return a Keras model.",
        "a keras.Model",
        model,
    )
    return spec


@student_check
def check_model_input(build_model) -> None:
    _expect_model_input(_built_model(build_model))


def _expect_model_input(spec: ModelSpec) -> None:
    """One 28x28 image per example: (28, 28), or (28, 28, 1) as a convolutional network's
    tutorial writes it (Keras feeds such a model the (n, 28, 28) images as they are)."""
    got = tuple(spec.input_shape[1:]) if spec.input_shape else None
    expect(
        got in (IMAGE_SHAPE, (*IMAGE_SHAPE, 1)),
        "The model should take one 28x28 image per example "
        "(start it with keras.Input(shape=(28, 28))).",
        (None, *IMAGE_SHAPE),
        spec.input_shape
        if spec.input_shape
        else "a model with no input shape yet (no keras.Input: it takes one when first trained)",
    )


@student_check
def check_model_output(build_model) -> None:
    _expect_model_output(_built_model(build_model))


def _expect_model_output(spec: ModelSpec) -> None:
    last, activation = output_layer(spec)
    expect(
        last is not None and last.kind == "Dense",
        "The last layer should be a Dense layer.",
        "Dense",
        last.kind if last else "no layers",
    )
    expect(
        last.units == NUM_CLASSES,
        f"The last layer needs one unit per class: {NUM_CLASSES} units.",
        NUM_CLASSES,
        last.units,
    )
    expect(
        activation == "softmax",
        "The last layer should use softmax, so the model outputs class probabilities "
        "(without it the model outputs raw scores, 'logits').",
        repr("softmax"),
        repr(activation),
    )


@student_check
def check_model_compiled(build_model) -> None:
    _expect_model_compiled(_built_model(build_model))


def _expect_model_compiled(spec: ModelSpec) -> None:
    expect(
        spec.optimizer is not None,
        "Compile the model before returning it (model.compile(optimizer=..., loss=...)).",
        "a compiled model",
        "a model that is not compiled",
    )
    expect(
        spec.optimizer.lower() == "adam",
        'Compile the model with the adam optimizer (optimizer="adam").',
        repr("Adam"),
        repr(spec.optimizer),
    )
    expect(
        spec.loss == "sparse_categorical_crossentropy",
        'Compile with loss="sparse_categorical_crossentropy": the labels are class numbers '
        "(0-9), not one-hot vectors.",
        repr("sparse_categorical_crossentropy"),
        repr(spec.loss),
    )


def _predicted(predict_probs, images, seed: int):
    """predict_probs(model, images) on a reference model with known weights, and its shape."""
    images = np.asarray(images)
    probs = call_student(predict_probs, "predict_probs", reference_argument(seed), images)
    _expect_probs_shape(probs, len(images))
    return reference_model(seed), np.asarray(probs, dtype=np.float64)


def _expect_probs_shape(probs, count: int) -> None:
    """What predict_probs returned for `count` images is one row of class probabilities each."""
    shape = shape_of(probs)
    hint = ""
    if shape and len(shape) == 2 and shape[0] != count:
        hint = (
            f" It returned {shape[0]} rows for {count} images: predict on the images passed to "
            "predict_probs, not on another array."
        )
    elif shape == (count,):
        hint = " It returned one number per image (the classes?): return the probabilities."
    expect(
        shape == (count, NUM_CLASSES),
        f"predict_probs(model, images) should return one row of {NUM_CLASSES} class "
        f"probabilities per image: an array of shape (number of images, {NUM_CLASSES}).{hint}",
        f"an array of shape {(count, NUM_CLASSES)}",
        probs,
    )


@student_check
def check_predict_probs_shape(predict_probs, images, seed: int = 0) -> None:
    _predicted(predict_probs, images, seed)


def _rows_found(probs: np.ndarray) -> str:
    """What rows of would-be probabilities hold, in words: "rows that sum to 0.5"."""
    if not np.isfinite(probs).all():
        return "values that are not numbers (nan or inf)"
    if probs.min() < -1e-6:
        return f"values below 0 (the smallest is {probs.min():.3g})"
    sums = probs.sum(axis=1)
    if np.ptp(sums) <= 1e-4:
        return f"rows that sum to {sums.mean():.3g}"
    return f"rows that sum to between {sums.min():.3g} and {sums.max():.3g}"


def _are_probabilities(probs: np.ndarray) -> bool:
    return bool(
        np.isfinite(probs).all()
        and probs.min() >= -1e-6
        and probs.max() <= 1 + 1e-6
        and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    )


@student_check
def check_predict_probs_sum_to_one(predict_probs, images, seed: int = 0) -> None:
    """Each row is a probability distribution: values between 0 and 1 that sum to 1. Judged on
    whatever rows of 10 predict_probs returns: anything else (one class per image, say) is the
    shape check's to charge, once."""
    images = np.asarray(images)
    probs = call_student(predict_probs, "predict_probs", reference_argument(seed), images)
    shape = shape_of(probs)
    if shape is None:  # nothing to judge (None, say): told as the shape check tells it
        _expect_probs_shape(probs, len(images))
    if len(shape) != 2 or shape[1] != NUM_CLASSES or shape[0] == 0:
        return
    probs = np.asarray(probs, dtype=np.float64)
    expect(
        _are_probabilities(probs),
        f"Each image's {NUM_CLASSES} probabilities should be between 0 and 1 and sum to 1, "
        "as the softmax layer's output does.",
        f"rows of {NUM_CLASSES} values between 0 and 1 that sum to 1",
        _rows_found(probs),
    )


def _without_softmax(build_model) -> bool:
    """Whether the student's own model outputs logits (no softmax at its end): then a
    predict_probs that applies softmax to the model's output gives that model's probabilities,
    and only build_model's output check charges the missing softmax."""
    try:
        spec = describe_model(call_student(build_model, "build_model"))
    except CheckFailed:
        return False
    last, activation = output_layer(spec) if spec is not None else (None, None)
    return last is not None and activation in (None, "linear")


def _differs(probs: np.ndarray, want: np.ndarray) -> str:
    """How the values differ from the model's output, in words."""
    if probs.shape[1] > 1 and np.ptp(probs) <= 1e-6:
        return f"the same value, {probs[0, 0]:.3g}, for every class"
    if probs.shape[1] > 1 and np.ptp(probs, axis=1).max() <= 1e-6:
        return "the same value for every class within each row"
    zeros = np.isclose(probs, 0, atol=1e-6).sum(axis=1)
    if probs.shape[1] > 1 and np.all(zeros == probs.shape[1] - 1):
        return "one-hot rows (one value in each row, the others 0): classes, not probabilities"
    gap = float(np.abs(probs - want).max())
    return f"values that differ from it by up to {gap:.3g}"


@student_check
def check_predict_probs_output(predict_probs, images, seed: int = 0, build_model=None) -> None:
    """The values: the model's own output for these images, unchanged. Rows scaled so that they
    do not sum to 1 are the sums check's business, and pass here; softmax applied to the
    output passes when the student's own model outputs logits (see _without_softmax)."""
    spec, probs = _predicted(predict_probs, images, seed)
    want = forward(spec, images)
    if float(np.abs(probs - want).max()) <= 1e-4:
        return
    sums = probs.sum(axis=1, keepdims=True)
    if np.isfinite(probs).all() and probs.min() >= 0 and (sums > 0).all():
        if float(np.abs(probs / sums - want).max()) <= 1e-4:
            return
    softmax_of_output = float(np.abs(probs - _activate("softmax", want)).max()) <= 1e-4
    if softmax_of_output and _without_softmax(build_model):
        return
    expect(
        False,
        "predict_probs should return the model's own output for the images it is given "
        "(model.predict(images)), unchanged.",
        "the model's output",
        _differs(probs, want),
    )


def _charged_by_the_build_checks(spec: ModelSpec) -> bool:
    """Whether build_model's own checks (input, output layer, compile) fail on this model."""
    for expect_part in (_expect_model_input, _expect_model_output, _expect_model_compiled):
        try:
            expect_part(spec)
        except CheckFailed:
            return True
    return False


@student_check
def check_trained_model_accuracy(model) -> None:
    """The end of the pipeline: a model built as asked, trained by the notebook, classifies the
    test set. A model that build_model's checks already charge for (5 output units, sgd, no
    softmax...) is not judged again here: a mistake costs points once, and the grader's shorter
    training is tuned for the model asked for, not for every other one."""
    expect(
        model is not None,
        "`model` is not defined in your notebook, or is None (did the training cell run "
        "without errors?).",
        "the trained Keras model",
        None,
    )
    spec = describe_model(model)
    expect(spec is not None, "`model` should be the trained Keras model.", "a keras.Model", model)
    if _charged_by_the_build_checks(spec):
        return
    (_, _), (x_test, y_test) = exercise_data()
    try:
        outputs = model_outputs(spec, scale_images(x_test))
    except CannotRunModel as why:
        expect(
            False,
            "The grader rebuilds your trained model with Keras to measure its accuracy, and "
            "could not rebuild this one: use Keras's own layers (keras.layers...), without "
            "Lambda layers or layer classes of your own.",
            "a model of Keras's own layers",
            why.got,
        )
    expect(
        np.shape(outputs) == (len(y_test), NUM_CLASSES),
        "The trained model should output one row of class probabilities per test image.",
        f"an array of shape {(len(y_test), NUM_CLASSES)}",
        f"an array of shape {tuple(np.shape(outputs))}",
    )
    accuracy = float(np.mean(np.argmax(outputs, 1) == y_test))
    expect(
        accuracy >= MIN_ACCURACY,
        f"The trained model should classify at least {MIN_ACCURACY:.0%} of the test images "
        "correctly.",
        f"an accuracy of at least {MIN_ACCURACY:.2f}",
        f"{accuracy:.4f}",
    )


@student_check
def check_top_class(top_class, probs, only_if_one_class: bool = False) -> None:
    """top_class on one row (a class) or on several (a class per row). `only_if_one_class`: for
    one row, judge the class only when top_class returns one (or raises nothing); whether it does
    is the public one-row check's business, so a top_class that handles only 2-D arrays is
    charged for that once."""
    probs = np.asarray(probs)
    if only_if_one_class and probs.ndim == 1:
        try:
            got = call_student(top_class, "top_class", probs)
        except CheckFailed:
            return
        if as_class(got) is None:
            return
    else:
        got = call_student(top_class, "top_class", probs)
    want = np.argmax(probs, axis=-1)
    if probs.ndim == 1:
        expect(
            as_class(got) == int(want),
            "For one row of probabilities, top_class should return the index of the "
            "largest one (np.argmax).",
            int(want),
            got,
        )
        return
    got_shape = shape_of(got)
    hint = ""
    if got_shape == (probs.shape[1],):
        hint = " It looks like argmax ran down the columns (axis=0); use axis=-1 for each row."
    expect(
        got_shape == want.shape,
        f"For {probs.shape[0]} rows of probabilities, top_class should return "
        f"{probs.shape[0]} classes, one per row.{hint}",
        want,
        got,
    )
    expect(
        np.array_equal(np.asarray(got), want),
        "top_class should return the index of the largest probability in each row.",
        want,
        got,
    )


def first_test_image_probs() -> np.ndarray:
    """Reference probabilities for the first test image (what a trained model gives it: most
    of the weight on its true class): the check of top_class on it does not depend on the
    student's model."""
    probs = np.full(NUM_CLASSES, 0.02)
    probs[(FIRST_TEST_CLASS + 1) % NUM_CLASSES] = 0.08
    probs[FIRST_TEST_CLASS] = 1 - probs.sum() + 0.02
    return probs


@student_check
def check_first_test_image(top_class) -> None:
    y_test = exercise_data()[1][1]
    probs = first_test_image_probs()
    try:
        got = call_student(top_class, "top_class", probs)
    except CheckFailed:
        got = None
    if as_class(got) is None:
        # Not one class for one row: the one-row check charges that. Here the question is
        # whether the first test image's probabilities give a 7, asked as a batch of one row.
        batch = call_student(top_class, "top_class", probs[np.newaxis])
        if shape_of(batch) == (1,):
            got = np.asarray(batch).reshape(-1)[0]
        elif got is None:
            got = batch
    expect(
        as_class(got) == FIRST_TEST_CLASS == int(y_test[0]),
        f"The first test image is a {class_label(FIRST_TEST_CLASS)}: given its probabilities "
        f"{returned(np.round(probs, 2))}, top_class should return {FIRST_TEST_CLASS}.",
        FIRST_TEST_CLASS,
        got,
    )


def _bars_axes(spec: FigureSpec) -> AxesSpec | None:
    """The axes of the bar chart: the one with the most bars."""
    with_bars = [ax for ax in spec.axes if ax.bars]
    return max(with_bars, key=lambda ax: len(ax.bars)) if with_bars else None


def _plotted(plot_prediction, image, probs) -> FigureSpec:
    """The figure plot_prediction made, returned alone or inside a tuple (`return fig, axes`):
    the checks of what it shows judge that figure, and only the check that the function returns
    the figure itself charges the tuple."""
    fig = call_student(plot_prediction, "plot_prediction", image, probs)
    spec = describe_figure(fig)
    expect(
        spec is not None,
        "plot_prediction should return the matplotlib Figure "
        "(e.g. fig, axes = plt.subplots(1, 2) ... return fig).",
        "a matplotlib Figure",
        fig,
    )
    return spec


@student_check
def check_plot_returns_figure(plot_prediction, image, probs) -> None:
    spec = _plotted(plot_prediction, image, probs)
    expect(
        spec.inside is None,
        "plot_prediction should return the figure itself (return fig), not a tuple or list "
        "that holds it.",
        "a matplotlib Figure",
        f"{spec.inside}, one of them the figure",
    )


def _overlap(a: tuple, b: tuple) -> bool:
    """Whether two axes' boxes (x0, y0, x1, y1) share more than an edge."""
    return min(a[2], b[2]) - max(a[0], b[0]) > 1e-6 and min(a[3], b[3]) - max(a[1], b[1]) > 1e-6


def _shows(shown: np.ndarray, image: np.ndarray) -> bool:
    """Whether `shown` is `image` as imshow displays it: the same values, or the same picture
    with its grey levels scaled (imshow maps the smallest value to black and the largest to
    white, so `image * 255` as uint8 looks the same)."""
    if shown.size != image.size or not np.isfinite(shown).all():
        return False
    shown = shown.reshape(image.shape)
    if np.allclose(shown, image, atol=1e-4):
        return True
    spread, shown_spread = np.ptp(image), np.ptp(shown)
    if spread == 0 or shown_spread == 0:
        return False
    as_seen = (shown - shown.min()) / shown_spread
    return bool(np.allclose(as_seen, (image - image.min()) / spread, atol=0.01))


@student_check
def check_plot_image(plot_prediction, image, probs) -> None:
    spec = _plotted(plot_prediction, image, probs)
    image = np.asarray(image, dtype=np.float64)
    shown = [np.asarray(a, dtype=np.float64) for ax in spec.axes for a in ax.images]
    expect(
        any(_shows(a, image) for a in shown),
        "The figure should show the 28x28 image it was given (imshow(image)).",
        "the image, 28x28",
        ", ".join(f"an image of shape {a.shape}" for a in shown) or "no image",
    )


@student_check
def check_plot_bars(plot_prediction, image, probs) -> None:
    spec = _plotted(plot_prediction, image, probs)
    ax = _bars_axes(spec)
    expect(
        ax is not None,
        "The figure should have a bar chart of the class probabilities "
        f"(ax.bar(range({NUM_CLASSES}), probs)).",
        f"{NUM_CLASSES} bars",
        "no bars",
    )
    expect(
        len(ax.bars) == NUM_CLASSES,
        "The bar chart should have one bar per class.",
        f"{NUM_CLASSES} bars",
        f"{len(ax.bars)} {ax.orientation} bars",
    )
    heights = np.array([bar.height for bar in ax.bars])
    want = np.asarray(probs, dtype=np.float64)
    expect(
        # as probabilities, or as percentages (the same chart on a 0-100 axis)
        np.allclose(heights, want, atol=1e-6) or np.allclose(heights, 100 * want, atol=1e-4),
        f"The bar heights should be the probabilities, in class order 0-{NUM_CLASSES - 1}.",
        f"heights {np.round(want, 4).tolist()}",
        f"heights {np.round(heights, 4).tolist()}",
    )
    image = np.asarray(image, dtype=np.float64)
    image_axes = [
        a for a in spec.axes if any(_shows(np.asarray(i, float), image) for i in a.images)
    ]
    expect(
        all(ax is not other for other in image_axes),
        "Draw the image and the bar chart in two axes side by side "
        "(fig, (ax_image, ax_bars) = plt.subplots(1, 2)), the image with ax_image.imshow and the "
        "bars with ax_bars.bar: plt.imshow and plt.bar both draw into the last axes made.",
        "the image and the bars in two axes side by side",
        "the image and the bars in the same axes",
    )
    expect(
        not any(_overlap(ax.box, other.box) for other in image_axes),
        "Draw the image and the bar chart side by side, in axes that do not overlap.",
        "the image and the bars in two axes side by side",
        "the image's axes and the bars' axes overlapping",
    )


@student_check
def check_plot_labels(plot_prediction, image, probs) -> None:
    spec = _plotted(plot_prediction, image, probs)
    ax = _bars_axes(spec)
    labels = [bar.label for bar in ax.bars] if ax else []
    how = (
        "Label each bar with its class name on the axis of the classes "
        f"(e.g. ax.set_xticks(range({NUM_CLASSES}), CLASS_NAMES), or set_yticks for ax.barh)."
        if NAMED_CLASSES
        else "Label each bar with its class, 0 to 9, on the axis of the classes "
        "(e.g. ax.set_xticks(range(10)), or ax.set_yticks(range(10)) for ax.barh)."
    )
    expect(
        labels == CLASS_NAMES,
        how,
        f"labels {CLASS_NAMES}",
        f"labels {labels}" if ax else "no bars",
    )


@student_check
def check_plot_highlight(plot_prediction, image, probs) -> None:
    spec = _plotted(plot_prediction, image, probs)
    ax = _bars_axes(spec)
    count = len(ax.bars) if ax else 0
    expect(
        count == NUM_CLASSES,
        f"Draw the {NUM_CLASSES} probability bars first.",
        f"{NUM_CLASSES} bars",
        f"{count} bars",
    )
    top = int(np.argmax(probs))
    look = [(bar.facecolor, bar.edgecolor, bar.hatch) for bar in ax.bars]
    expect(
        all(look[top] != other for i, other in enumerate(look) if i != top),
        "Make the predicted class's bar stand out (a different colour, for example).",
        f"bar {top} looking different from the others",
        f"bar {top} looking like the others",
    )
