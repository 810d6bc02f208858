"""The trained model is judged by Keras itself: numpy only for the models it computes exactly as
Keras does (proven here on every kind it accepts), Keras's evaluator, in a sandboxed process of the
grader's, for every other model of Keras's own layers, and a clear refusal for the rest."""

from __future__ import annotations

import functools
import json
import os
import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest

from mnist_grader import evaluator, sandbox

RNG = np.random.default_rng(7)
IMAGES = RNG.random((40, 28, 28), dtype=np.float32)


def _description(exercise, model):
    """The model as the grader receives it from the kernel: a description, no live model."""
    spec = exercise.describe_model(model)
    spec.run = None
    return spec


def _randomised(model):
    """Weights that make every layer matter (a fresh model's biases are zeros)."""
    for layer in model.layers:
        layer.set_weights(
            [RNG.normal(0, 0.3, w.shape).astype("float32") for w in layer.get_weights()]
        )
    return model


NUMPY_MODELS = {
    "the notebook's": lambda: [
        keras.layers.Flatten(),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ],
    "dropout, sigmoid, tanh, linear": lambda: [
        keras.layers.Flatten(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(16, activation="sigmoid"),
        keras.layers.Dense(12, activation="tanh"),
        keras.layers.Dense(12),
        keras.layers.Dense(10, activation="softmax"),
    ],
    "a Dense layer on each row before Flatten": lambda: [
        keras.layers.Dense(6, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ],
}


@pytest.mark.parametrize("name", NUMPY_MODELS)
def test_numpy_gives_keras_answer_on_every_model_it_accepts(exercise, name):
    model = _randomised(keras.Sequential([keras.Input(shape=(28, 28)), *NUMPY_MODELS[name]()]))
    spec = _description(exercise, model)
    assert exercise.numpy_can_run(spec)
    np.testing.assert_allclose(
        exercise.forward(spec, IMAGES), model.predict(IMAGES, verbose=0), atol=1e-5
    )


def test_numpy_refuses_what_it_would_not_compute_exactly(exercise):
    """Other layers, a missing bias, and weights of any shape but their place's: a bias of shape
    (2000, 1, 10) would broadcast into an array thousands of times the test set's size."""
    model = keras.Sequential(
        [keras.Input(shape=(28, 28)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    spec = _description(exercise, model)
    assert exercise.numpy_can_run(spec)
    spec.layers[-1].weights[1] = np.zeros((2000, 1, 10))
    assert not exercise.numpy_can_run(spec)
    spec.layers[-1].weights = spec.layers[-1].weights[:1]
    assert not exercise.numpy_can_run(spec)
    conv = keras.Sequential(
        [keras.Input(shape=(28, 28)), keras.layers.Reshape((28, 28, 1)), keras.layers.Conv2D(2, 3)]
    )
    assert not exercise.numpy_can_run(_description(exercise, conv))


def _config(*layers) -> str:
    return keras.Sequential([keras.Input(shape=(28, 28)), *layers]).to_json()


def test_keras_own_layers_are_accepted():
    inputs = keras.Input(shape=(28, 28))
    flat = keras.layers.Flatten()(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(flat)
    functional = keras.Model(inputs, outputs)
    functional.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    nested = keras.Sequential([functional, keras.layers.Softmax()])
    cnn = _config(
        keras.layers.Reshape((28, 28, 1)),
        keras.layers.Conv2D(4, 3, activation="relu", kernel_regularizer="l2"),
        keras.layers.MaxPooling2D(),
        keras.layers.BatchNormalization(),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    )
    for text in (functional.to_json(), nested.to_json(), cnn):
        assert "compile_config" not in json.dumps(evaluator.check_config(text))


@pytest.mark.parametrize(
    ("make", "got"),
    [
        (lambda: _config(keras.layers.Lambda(lambda x: x * 2)), "a Lambda layer"),
        (
            lambda: _config(
                keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")
            ).replace('"keras.layers", "class_name": "Dense"', '"os", "class_name": "system"'),
            "class system",
        ),
        (
            lambda: _config(
                keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")
            ).replace('"softmax"', '"os.system"'),
            "activation 'os.system'",
        ),
        (
            lambda: _config(keras.layers.Flatten(), keras.layers.Dense(10)).replace(
                '"class_name": "Dense"', '"class_name": "TFSMLayer"'
            ),
            "a TFSMLayer layer",
        ),
        (lambda: '{"class_name": "Sequential", "config": ' * 100 + "}" * 100, "nested too deeply"),
        (lambda: "not json", "no description"),
        (lambda: None, "no description"),
    ],
)
def test_anything_else_is_refused_before_keras_reads_it(make, got):
    with pytest.raises(evaluator.Refused) as refused:
        evaluator.check_config(make())
    assert got in refused.value.got


@pytest.fixture
def evaluator_folder():
    """A grading folder as the engine makes one: root's, traversable by the sandbox uids."""
    folder = Path(tempfile.mkdtemp(prefix="mnist-grade-test-", dir=sandbox.work_root()))
    folder.chmod(0o711)
    yield folder
    import shutil

    shutil.rmtree(folder)


def _run(exercise, spec, folder, seconds=180):
    return evaluator.run_model(spec, IMAGES, folder=folder, slot=0, memory_mb=3072, seconds=seconds)


def test_a_cnn_is_run_by_keras_in_the_sandbox(exercise, master_exercise, evaluator_folder):
    """The evaluator rebuilds a CNN from its description and weights and gives Keras's answer,
    computed as a uid of its own (not root, not the kernel's)."""
    model = _randomised(
        keras.Sequential(
            [
                keras.Input(shape=(28, 28)),
                keras.layers.Reshape((28, 28, 1)),
                keras.layers.Conv2D(4, 3, activation="relu"),
                keras.layers.MaxPooling2D(),
                keras.layers.BatchNormalization(),
                keras.layers.Flatten(),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
    )
    spec = _description(exercise, model)
    assert not exercise.numpy_can_run(spec)
    outputs = _run(exercise, spec, evaluator_folder)
    np.testing.assert_allclose(outputs, model.predict(IMAGES, verbose=0), atol=1e-5)
    written = next(evaluator_folder.glob("evaluator-*/out/outputs.npy"))
    if sandbox.is_root():
        assert os.stat(written).st_uid == evaluator.evaluator_uid(0)
        assert evaluator.evaluator_uid(0) not in sandbox.SANDBOX_UIDS


def test_weights_that_do_not_fit_are_refused_in_the_students_terms(
    exercise, master_exercise, evaluator_folder
):
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            keras.layers.Reshape((28, 28, 1)),
            keras.layers.Conv2D(2, 3),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    spec = _description(exercise, model)
    spec.layers[-1].weights[1] = np.zeros((2000, 1, 10), dtype=np.float32)
    with pytest.raises(exercise.CannotRunModel) as refused:
        _run(exercise, spec, evaluator_folder)
    assert refused.value.got == "weights that do not fit its layer Dense"


def test_the_accuracy_check_says_what_it_could_not_rebuild(exercise, master_exercise):
    """In the grader (no live model), a Lambda layer fails the accuracy check with its reason."""
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            keras.layers.Lambda(lambda x: x / 2),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    spec = _description(exercise, model)

    # refused before the folder or the uid are used: none is given
    exercise.keras_runner = functools.partial(
        evaluator.run_model, folder=Path("/nonexistent"), slot=0, memory_mb=1, seconds=1
    )
    try:
        with pytest.raises(exercise.CheckFailed) as failed:
            exercise.check_trained_model_accuracy(spec)
    finally:
        exercise.keras_runner = None
    assert failed.value.feedback.got == "a Lambda layer (a function of your own inside the model)"
    assert "could not rebuild this one" in failed.value.feedback.message


def test_a_cnn_with_a_channel_axis_in_its_input_is_judged_like_any(exercise, master_exercise):
    """keras.Input(shape=(28, 28, 1)), as convolutional tutorials write it: Keras trains and runs
    it on the (n, 28, 28) images as they are, so the input check accepts it, and the accuracy
    check computes it (here with the live model, as in the notebook)."""
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Conv2D(2, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    exercise.check_model_input(lambda: model)
    assert exercise.model_outputs(exercise.describe_model(model), IMAGES).shape == (40, 10)


def test_tensorflow_activations_are_keras_own():
    """tf.nn.softmax, which Keras stores as a function named softmax_v2, is read as softmax, in
    the kernel's description and in the evaluator's."""
    import tensorflow as tf

    from mnist_grader import MASTER_DIR, engine

    exercise = engine.exercise_module(MASTER_DIR)
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            keras.layers.Reshape((28, 28, 1)),
            keras.layers.Conv2D(2, 3, activation=tf.nn.relu),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation=tf.nn.softmax),
        ]
    )
    assert [layer.activation for layer in exercise.describe_model(model).layers][-1] == "softmax"
    config = evaluator.check_config(model.to_json())
    rebuilt = keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert rebuilt.layers[-1].get_config()["activation"] == "softmax"
