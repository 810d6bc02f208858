"""The grader's Keras evaluator: a student's trained model, sent as data (Keras's own description
of it, `model.to_json()`, and each layer's weights), rebuilt and run by Keras itself in a process
of the grader's that runs no student code.

Why a process of its own: the accuracy check needs the model's outputs on the test set. The
student's kernel could compute them, but it runs the student's code, which may answer anything;
and the grader process never imports Keras (it would cost every submission seconds of CPU). So:
- `check_config` reads the description before Keras sees it and accepts only Keras's own
  classes from an allow-list (no Lambda, no custom objects, no other modules, known activation
  names): Keras's safe_mode alone has had bypasses;
- `run_model` writes the description, the weights and the images into a folder, and starts
  `python -m mnist_grader.evaluator` there, which drops to a uid of its own (not the kernel's, so
  the student's processes cannot touch it), with limits on memory, CPU and time and a clean
  environment, rebuilds the model in Keras's safe mode, gives each layer its weights, and saves
  the outputs as a .npy file;
- the answer is read as data: a regular file, no pickles, of exactly the expected shape.

Models that numpy computes exactly (mnist_exercise.numpy_can_run: the Flatten/Dense models the
notebook asks for) never come here: starting Keras costs seconds of CPU (make bench).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

# The layers Keras ships that a first image classifier may use; every other class is refused.
ALLOWED_LAYERS = frozenset(
    """
    InputLayer Flatten Dense Dropout Reshape Permute Rescaling Normalization Resizing CenterCrop
    Conv1D Conv2D SeparableConv2D DepthwiseConv2D Conv2DTranspose ZeroPadding2D Cropping2D
    MaxPooling1D MaxPooling2D AveragePooling1D AveragePooling2D GlobalMaxPooling1D
    GlobalMaxPooling2D GlobalAveragePooling1D GlobalAveragePooling2D
    BatchNormalization LayerNormalization UnitNormalization GroupNormalization
    Activation Softmax ReLU LeakyReLU ELU PReLU
    SpatialDropout1D SpatialDropout2D GaussianNoise GaussianDropout AlphaDropout
    ActivityRegularization
    RandomFlip RandomRotation RandomTranslation RandomZoom RandomContrast RandomCrop
    SimpleRNN LSTM GRU Bidirectional
    Add Subtract Multiply Average Maximum Minimum Concatenate
    """.split()
)
ALLOWED_CLASSES = {
    "keras.layers": ALLOWED_LAYERS,
    "keras": frozenset({"Sequential", "Functional", "DTypePolicy", "FloatDTypePolicy"}),
    "keras.src.models.functional": frozenset({"Functional"}),
    "keras.initializers": frozenset(
        """Zeros Ones Constant RandomNormal RandomUniform TruncatedNormal VarianceScaling
        GlorotUniform GlorotNormal HeUniform HeNormal LecunUniform LecunNormal Orthogonal
        Identity IdentityInitializer""".split()
    ),
    "keras.regularizers": frozenset({"L1", "L2", "L1L2", "OrthogonalRegularizer"}),
    "keras.constraints": frozenset({"MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm"}),
}
ACTIVATIONS = frozenset(
    """linear relu relu6 leaky_relu elu selu gelu silu swish mish softplus softsign sigmoid
    hard_sigmoid hard_silu hard_swish tanh exponential softmax log_softmax""".split()
)
MAX_CONFIG_BYTES = 2 * 2**20
MAX_DEPTH = 64  # a model nested deeper than any real one is refused before json or Keras recurse


class Refused(Exception):
    """A model description the evaluator will not rebuild; `got` says what, for the student."""

    def __init__(self, got: str):
        super().__init__(got)
        self.got = got


def check_config(text: str) -> dict:
    """The model's description as JSON, accepted only when it is made of allowed classes."""
    if not isinstance(text, str) or len(text) > MAX_CONFIG_BYTES:
        raise Refused("no description of the model that Keras can read back")
    if _nesting(text) > MAX_DEPTH:
        raise Refused("a model nested too deeply to rebuild")
    try:
        config = json.loads(text)
    except ValueError:
        raise Refused("no description of the model that Keras can read back") from None
    if not isinstance(config, dict) or config.get("class_name") not in ("Sequential", "Functional"):
        raise Refused("a model that is neither keras.Sequential nor a functional keras.Model")
    config = _without_compile(config)
    _check(config)
    return config


def _without_compile(value):
    """The description without how it was compiled (optimizer, loss, metrics): running a model
    needs none of it, and the build checks judge the compile from the kernel's report. An
    activation given as TensorFlow's function (tf.nn.softmax, stored as {"class_name":
    "function", "config": "softmax_v2"}) becomes Keras's own of that name."""
    if isinstance(value, dict):
        if (
            value.get("module") == "builtins"
            and value.get("class_name") == "function"
            and isinstance(value.get("config"), str)
            and value["config"].removesuffix("_v2") in ACTIVATIONS
        ):
            return value["config"].removesuffix("_v2")
        return {k: _without_compile(v) for k, v in value.items() if k != "compile_config"}
    if isinstance(value, list):
        return [_without_compile(v) for v in value]
    return value


def _nesting(text: str) -> int:
    """How deep the JSON's brackets go (strings skipped), counted without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _check(value) -> None:
    if isinstance(value, list):
        for item in value:
            _check(item)
        return
    if not isinstance(value, dict):
        return
    if "class_name" in value or "module" in value:
        _check_object(value)
    for key, item in value.items():
        if key == "activation" and isinstance(item, str) and item not in ACTIVATIONS:
            raise Refused(f"the activation {item!r}, which is not one of Keras's own")
        if key in ("function", "function_type", "module_path", "output_shape_type"):
            raise Refused("a Lambda layer (a function of your own inside the model)")
        _check(item)


def _check_object(value: dict) -> None:
    class_name, module = value.get("class_name"), value.get("module")
    if class_name == "__keras_tensor__" and module is None:  # a functional model's wiring
        return
    if class_name == "Lambda" or class_name == "__lambda__":
        raise Refused("a Lambda layer (a function of your own inside the model)")
    allowed = ALLOWED_CLASSES.get(module) if isinstance(module, str) else None
    if allowed is None or class_name not in allowed:
        name = class_name if isinstance(class_name, str) else "unknown"
        if module == "keras.layers":
            raise Refused(f"a {name} layer, which the grader does not rebuild")
        raise Refused(f"a layer or object of class {name} (not one of Keras's own)")
    if value.get("registered_name") not in (None, class_name):
        raise Refused(f"a layer registered as {value.get('registered_name')!r}")


# -- the grader's side ---------------------------------------------------------------------------


def evaluator_uid(slot: int) -> int:
    """The evaluator's uid for a grading slot: one of its own, never a kernel's (the student's
    processes, which run as the kernel's uid, cannot signal or trace it)."""
    from . import sandbox

    return sandbox.FIRST_SANDBOX_UID + sandbox.MAX_SLOTS + slot


def run_model(spec, images, *, folder: Path, slot: int, memory_mb: int, seconds: int):
    """The outputs of the model `spec` describes (config + weights) for `images`, computed by Keras
    in the evaluator's process. Raises mnist_exercise.CannotRunModel with the student's reason."""
    import mnist_exercise as ex
    import numpy as np

    from . import sandbox
    from .launcher import NOGROUP, is_root

    try:
        check_config(spec.config)
    except Refused as refused:
        raise ex.CannotRunModel(refused.got) from None
    uid = evaluator_uid(slot)
    work = Path(tempfile.mkdtemp(prefix="evaluator-", dir=folder))
    work.chmod(0o755)
    inbox, outbox = work / "in", work / "out"
    inbox.mkdir(mode=0o755)
    outbox.mkdir(mode=0o700)
    (inbox / "config.json").write_text(spec.config)
    counts = []
    for i, layer in enumerate(spec.layers):
        counts.append(len(layer.weights))
        for j, weight in enumerate(layer.weights):
            np.save(inbox / f"w{i}_{j}.npy", np.asarray(weight, dtype=np.float32))
    (inbox / "layers.json").write_text(json.dumps(counts))
    np.save(inbox / "images.npy", np.asarray(images, dtype=np.float32))
    for path in inbox.iterdir():
        path.chmod(0o444)
    if is_root():
        os.chown(outbox, uid, NOGROUP)
    command = [
        sys.executable,
        "-m",
        "mnist_grader.evaluator",
        "--dir",
        str(work),
        "--uid",
        str(uid),
        "--memory-mb",
        str(memory_mb),
        "--cpu-seconds",
        str(seconds * 2),
    ]
    environment = {
        name: os.environ[name]
        for name in ("PATH", "LANG", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
        if name in os.environ
    }
    environment.update(
        HOME=str(outbox),
        TMPDIR=str(outbox),
        KERAS_HOME=str(outbox / "keras"),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONNOUSERSITE="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
    )
    try:
        finished = subprocess.run(
            command,
            env=environment,
            cwd=work,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=seconds,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        logger.warning("the Keras evaluator ran past %s s", seconds)
        raise ex.CannotRunModel(f"a model Keras could not run within {seconds} s") from None
    finally:
        if is_root():
            sandbox.sweep(uid)  # whatever it started ends with it
    logger.info(
        "Keras evaluator exited %s: %s",
        finished.returncode,
        finished.stderr.decode(errors="replace")[-4000:],
    )
    return _read_outputs(outbox, len(images), finished.returncode)


def _read_outputs(outbox: Path, count: int, returncode: int):
    import mnist_exercise as ex

    from . import wire

    refusal = outbox / "refused.json"
    try:
        reason = json.loads(wire._read_regular_file(refusal, 4096))
    except (wire.BadAnswer, ValueError):
        reason = None
    if isinstance(reason, str):
        raise ex.CannotRunModel(wire.one_line(reason, 200))
    try:
        outputs = wire._array(outbox, "outputs.npy", wire._Budget())
    except wire.BadAnswer:
        why = "ran out of memory" if returncode in (-9, 137) else "failed"
        raise ex.CannotRunModel(f"a model that Keras {why} when rebuilding or running it") from None
    if outputs.ndim != 2 or outputs.shape[0] != count:
        raise ex.CannotRunModel(f"outputs of shape {outputs.shape} for {count} images")
    return outputs


# -- the evaluator's own process -------------------------------------------------------------


def _refuse(outbox: Path, reason: str) -> None:
    (outbox / "refused.json").write_text(json.dumps(reason))
    raise SystemExit(3)


def evaluate(work: Path) -> None:
    """Rebuild the model in Keras's safe mode, give each layer its weights, run it, save the
    outputs. Runs as the evaluator's uid, never as root."""
    import numpy as np

    inbox, outbox = work / "in", work / "out"
    config = check_config((inbox / "config.json").read_text())  # again: nothing is assumed
    counts = json.loads((inbox / "layers.json").read_text())
    import keras

    try:
        model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - any failure is the model's, said in its words
        _refuse(outbox, f"a model Keras could not rebuild ({type(error).__name__})")
    # As mnist_exercise.leaf_layers walks the student's model: nested models opened up.
    layers = []

    def leaves(model):
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                leaves(layer)
            else:
                layers.append(layer)

    leaves(model)
    if len(layers) != len(counts):
        _refuse(outbox, "a model whose layers do not match its description")
    for i, (layer, count) in enumerate(zip(layers, counts, strict=True)):
        weights = [np.load(inbox / f"w{i}_{j}.npy", allow_pickle=False) for j in range(count)]
        try:
            layer.set_weights(weights)
        except Exception:  # noqa: BLE001 - weights of the wrong number or shape
            _refuse(outbox, f"weights that do not fit its layer {type(layer).__name__}")
    images = np.load(inbox / "images.npy", allow_pickle=False)
    outputs = model.predict(images, batch_size=1000, verbose=0)
    np.save(outbox / "outputs.npy", np.asarray(outputs, dtype=np.float32))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--uid", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--cpu-seconds", type=int, required=True)
    args = parser.parse_args(argv)
    from .launcher import NOGROUP, is_root, set_limits

    set_limits(args.memory_mb * 2**20, args.cpu_seconds, 512, 256 * 2**20)
    if is_root():
        os.setgroups([])
        os.setgid(NOGROUP)
        os.setuid(args.uid)
    os.umask(0o077)
    evaluate(args.dir.resolve())


if __name__ == "__main__":
    main()
