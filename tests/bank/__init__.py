"""The submission bank: golden submissions named by what they fail, with their expected scores.

Each case starts from the student notebook in assignment/ with every function filled in from the
reference solution, then replaces what the case is about. `build(folder)` writes one notebook per
case (`<name>.ipynb`); tests/test_bank.py grades them all in one batch through the real grader
and compares every question's score with `expected_scores(case)`. `build(folder, "fashion_mnist")`
writes the Fashion-MNIST variant's own bank (tests/bank/fashion_mnist.py) from its build.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from mnist_grader import questions, variants
from mnist_grader.assign import NOTEBOOK_NAME

FULL_MARKS = questions.full_marks()  # the master notebook's questions and points
STATUS_GRADED = "graded"


@dataclass
class Case:
    name: str
    why: str  # what is wrong, and so which checks it must fail
    functions: dict = field(default_factory=dict)  # function name -> its replacement source
    scores: dict = field(default_factory=dict)  # question -> expected score (others: full)
    starter: bool = False  # leave the student's `...` bodies as they are
    status: str = STATUS_GRADED
    cells: list = field(default_factory=list)  # extra code cells, run right after the setup cell
    last_cells: list = field(default_factory=list)  # extra code cells, run after all the others
    damage: object = None  # bytes -> bytes: what happens to the file after it is written
    kernel: str | None = None  # a kernelspec name to claim in the notebook's metadata
    link_to: str | None = None  # the upload is a symbolic link to this file of the project's
    # Every check it fails, "question/check" -> the first line of that check's feedback, word for
    # word ("{n}" stands for any whole number: hidden checks draw their sizes at random).
    feedback: dict = field(default_factory=dict)


CASES = [
    Case("passes_all", "the reference solution"),
    Case(
        "untouched_starter",
        "nothing filled in: every function returns None",
        starter=True,
        scores={q: 0 for q in FULL_MARKS},
    ),
    Case(
        "fails_q4a_q4c_reversed_shapes",
        "shapes reported back to front, e.g. (28, 28, 60000); the labels' 1-D shape survives",
        {
            "get_shapes": """
def get_shapes(train_images, train_labels, test_images):
    return train_images.shape[::-1], train_labels.shape[::-1], test_images.shape[::-1]
"""
        },
        {"q4a": 0, "q4c": 0},
        feedback={
            "q4a/train images shape": "The shape of the training images is not right. The order is reversed: NumPy lists the number of images first.",
            "q4a/train images shape other arrays": "The shape of the training images is not right. The order is reversed: NumPy lists the number of images first.",
            "q4c/test images shape": "The shape of the test images is not right. The order is reversed: NumPy lists the number of images first.",
            "q4c/test images shape other arrays": "The shape of the test images is not right. The order is reversed: NumPy lists the number of images first.",
        },
    ),
    Case(
        "fails_q4b_label_length_10",
        "the label set's length given as 10 (the number of classes) instead of 60000",
        {
            "get_shapes": """
def get_shapes(train_images, train_labels, test_images):
    return train_images.shape, (10,), test_images.shape
"""
        },
        {"q4b": 0},
        feedback={
            "q4b/train labels shape": "The shape of the training labels is not right. There is one label per image, so the label set has 60000 entries; 10 is the number of classes.",
            "q4b/label set length": "There is one label per image, so the labels' shape is (number of images,). 10 is the number of classes, not the number of labels.",
        },
    ),
    Case(
        "fails_hidden_q4a_q4b_q4c_hardcoded_shapes",
        "MNIST's shapes typed in as numbers: the public checks pass, the hidden ones on other "
        "arrays fail",
        {
            "get_shapes": """
def get_shapes(train_images, train_labels, test_images):
    return (60000, 28, 28), (60000,), (10000, 28, 28)
"""
        },
        {"q4a": 1, "q4b": 1, "q4c": 1},
        feedback={
            "q4a/train images shape other arrays": "The shape of the training images is not right.",
            "q4b/label set length": "There is one label per image, so the labels' shape is (number of images,).",
            "q4c/test images shape other arrays": "The shape of the test images is not right.",
        },
    ),
    Case(
        "fails_q4d_logits_without_softmax",
        "last layer without softmax (loss from_logits=True, so it trains well): only the "
        "output-layer check fails (predict_probs is judged on a reference model, and the trained "
        "model's accuracy is fine)",
        {
            "build_model": """
def build_model():
    model = keras.Sequential([
        keras.Input(shape=(28, 28)),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model
"""
        },
        {"q4d": 7},
        feedback={
            "q4d/last layer 10 units softmax": "The last layer should use softmax, so the model outputs class probabilities (without it the model outputs raw scores, 'logits').",
        },
    ),
    Case(
        "fails_q4d_five_output_units",
        "5 output units: the output-layer check fails; training stops with an error (labels "
        "go up to 9), but the accuracy check judges only models built as asked, so it is not "
        "charged again; predict_probs and top_class are judged on reference values and keep "
        "their points",
        {
            "build_model": """
def build_model():
    model = keras.Sequential([
        keras.Input(shape=(28, 28)),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(5, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model
"""
        },
        {"q4d": 7},
        feedback={
            "q4d/last layer 10 units softmax": "The last layer needs one unit per class: 10 units.",
        },
    ),
    Case(
        "fails_q4d_predicts_training_set",
        "predict_probs ignores its images and predicts x_train: 60000 rows whatever it is given, "
        "so its shape and output checks fail (its rows are probabilities: the sums check passes); "
        "q5 is judged on reference probabilities and keeps its points",
        {
            "predict_probs": """
def predict_probs(model, images):
    return model.predict(x_train, verbose=0)
"""
        },
        {"q4d": 5},
        feedback={
            "q4d/probs shape": "predict_probs(model, images) should return one row of 10 class probabilities per image: an array of shape (number of images, 10). It returned {n} rows for {n} images: predict on the images passed to predict_probs, not on another array.",
            "q4d/probs are the models output": "predict_probs(model, images) should return one row of 10 class probabilities per image: an array of shape (number of images, 10). It returned {n} rows for {n} images: predict on the images passed to predict_probs, not on another array.",
            "q4d/probs of random images": "predict_probs(model, images) should return one row of 10 class probabilities per image: an array of shape (number of images, 10). It returned {n} rows for {n} images: predict on the images passed to predict_probs, not on another array.",
        },
    ),
    Case(
        "fails_q4b_label_count_as_int",
        "the labels' shape given as the number 10 instead of a tuple: both label checks fail, "
        "each saying 10 is the number of classes",
        {
            "get_shapes": """
def get_shapes(train_images, train_labels, test_images):
    return train_images.shape, 10, test_images.shape
"""
        },
        {"q4b": 0},
        feedback={
            "q4b/train labels shape": "The shape of the training labels should be a tuple of whole numbers, like NumPy's .shape. There is one label per image, so the label set has 60000 entries; 10 is the number of classes.",
            "q4b/label set length": "There is one label per image, so the labels' shape is (number of images,). 10 is the number of classes, not the number of labels.",
        },
    ),
    Case(
        "fails_q4d_sgd_optimizer",
        "compiled with optimizer='sgd' instead of adam: only the compile check fails. At the "
        "grader's shorter training sgd falls short of 90% (its 5 epochs in the notebook do not), "
        "but the accuracy check judges only models built as asked, so it is not charged twice",
        {
            "build_model": """
def build_model():
    model = keras.Sequential([
        keras.Input(shape=(28, 28)),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model
"""
        },
        {"q4d": 7},
        feedback={
            "q4d/compiled adam sparse crossentropy": 'Compile the model with the adam optimizer (optimizer="adam").',
        },
    ),
    Case(
        "fails_q4d_predicts_classes",
        "predict_probs returns classes (argmax) instead of probabilities: its shape and output "
        "checks fail (the sums check judges rows of 10 only, which the shape check asks for); "
        "top_class (q5) keeps its points",
        {
            "predict_probs": """
def predict_probs(model, images):
    return model.predict(images, verbose=0).argmax(axis=1)
"""
        },
        {"q4d": 5},
        feedback={
            "q4d/probs shape": "predict_probs(model, images) should return one row of 10 class probabilities per image: an array of shape (number of images, 10). It returned one number per image (the classes?): return the probabilities.",
            "q4d/probs are the models output": "predict_probs(model, images) should return one row of 10 class probabilities per image: an array of shape (number of images, 10). It returned one number per image (the classes?): return the probabilities.",
            "q4d/probs of random images": "predict_probs(model, images) should return one row of 10 class probabilities per image: an array of shape (number of images, 10). It returned one number per image (the classes?): return the probabilities.",
        },
    ),
    Case(
        "fails_q4d_no_input_layer",
        "a Sequential model without keras.Input: it builds only when it first trains, so "
        "build_model() returns a model that takes no input shape yet; only the input check fails",
        {
            "build_model": """
def build_model():
    model = keras.Sequential([
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model
"""
        },
        {"q4d": 7},
        feedback={
            "q4d/model takes 28x28 images": "The model should take one 28x28 image per example (start it with keras.Input(shape=(28, 28))).",
        },
    ),
    Case(
        "fails_q4d_softmax_applied_twice",
        "predict_probs applies softmax to what the softmax model already returns: the right "
        "shape, the wrong values (flattened probabilities); the two value checks fail",
        {
            "predict_probs": """
def predict_probs(model, images):
    return keras.ops.convert_to_numpy(keras.ops.softmax(model.predict(images, verbose=0)))
"""
        },
        {"q4d": 6},
        feedback={
            "q4d/probs are the models output": "predict_probs should return the model's own output for the images it is given (model.predict(images)), unchanged.",
            "q4d/probs of random images": "predict_probs should return the model's own output for the images it is given (model.predict(images)), unchanged.",
        },
    ),
    Case(
        "fails_q4d_learning_rate_too_small",
        "adam with learning_rate=1e-6: everything is as asked, but the model barely learns; only "
        "the trained model's accuracy check fails",
        {
            "build_model": """
def build_model():
    model = keras.Sequential([
        keras.Input(shape=(28, 28)),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-6),
                  loss="sparse_categorical_crossentropy")
    return model
"""
        },
        {"q4d": 7},
        feedback={
            "q4d/trained model accuracy": "The trained model should classify at least 90% of the test images correctly.",
        },
    ),
    Case(
        "fails_q5_argmax_axis0",
        "np.argmax(probs, axis=0): right for one row, wrong for several rows",
        {
            "top_class": """
def top_class(probs):
    return np.argmax(probs, axis=0)
"""
        },
        {"q5": 2},
        feedback={
            "q5/several rows": "For {n} rows of probabilities, top_class should return {n} classes, one per row. It looks like argmax ran down the columns (axis=0); use axis=-1 for each row.",
            "q5/random probabilities": "For {n} rows of probabilities, top_class should return {n} classes, one per row. It looks like argmax ran down the columns (axis=0); use axis=-1 for each row.",
        },
    ),
    Case(
        "fails_q5_always_seven",
        "top_class returns 7 whatever it is given: only the first-test-image check passes",
        {
            "top_class": """
def top_class(probs):
    return 7
"""
        },
        {"q5": 1},
        feedback={
            "q5/one row": "For one row of probabilities, top_class should return the index of the largest one (np.argmax).",
            "q5/several rows": "For {n} rows of probabilities, top_class should return {n} classes, one per row.",
            "q5/random probabilities": "For {n} rows of probabilities, top_class should return {n} classes, one per row.",
        },
    ),
    Case(
        "fails_q5_classes_counted_from_1",
        "np.argmax(probs, axis=-1) + 1, as if the classes were numbered 1-10: the right shape, "
        "every value one too high; every q5 check fails",
        {
            "top_class": """
def top_class(probs):
    return np.argmax(probs, axis=-1) + 1
"""
        },
        {"q5": 0},
        feedback={
            "q5/one row": "For one row of probabilities, top_class should return the index of the largest one (np.argmax).",
            "q5/several rows": "top_class should return the index of the largest probability in each row.",
            "q5/first test image is a seven": "The first test image is a 7: given its probabilities array([0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.76, 0.08, 0.02]), top_class should return 7.",
            "q5/random probabilities": "top_class should return the index of the largest probability in each row.",
        },
    ),
    Case(
        "fails_q6_no_bars",
        "the image, but no bar chart: only the image check passes",
        {
            "plot_prediction": """
def plot_prediction(image, probs):
    fig, ax = plt.subplots()
    ax.imshow(image, cmap="gray")
    return fig
"""
        },
        {"q6": 2},
        feedback={
            "q6/ten bars of probabilities": "The figure should have a bar chart of the class probabilities (ax.bar(range(10), probs)).",
            "q6/bars labelled 0 to 9": "Label each bar with its class, 0 to 9, on the axis of the classes (e.g. ax.set_xticks(range(10)), or ax.set_yticks(range(10)) for ax.barh).",
            "q6/predicted bar stands out": "Draw the 10 probability bars first.",
            "q6/random image and probabilities": "The figure should have a bar chart of the class probabilities (ax.bar(range(10), probs)).",
        },
    ),
    Case(
        "fails_q6_bars_not_probabilities",
        "bars sorted from small to large, so their heights are not the class probabilities; "
        "image, labels and highlight are fine",
        {
            "plot_prediction": """
def plot_prediction(image, probs):
    probs = np.asarray(probs)
    fig, (left, right) = plt.subplots(1, 2)
    left.imshow(image, cmap="gray")
    colors = ["tab:blue"] * 10
    colors[int(np.argmax(probs))] = "tab:red"
    right.bar(range(10), np.sort(probs), color=colors)
    right.set_xticks(range(10))
    return fig
"""
        },
        {"q6": 4},
        feedback={
            "q6/ten bars of probabilities": "The bar heights should be the probabilities, in class order 0-9.",
            "q6/random image and probabilities": "The bar heights should be the probabilities, in class order 0-9.",
        },
    ),
    Case(
        "fails_q6_returns_nothing",
        "draws the plot but forgets `return fig`",
        {
            "plot_prediction": """
def plot_prediction(image, probs):
    fig, (left, right) = plt.subplots(1, 2)
    left.imshow(image, cmap="gray")
    right.bar(range(10), probs)
"""
        },
        {"q6": 0},
        feedback={
            "q6/returns the figure": "plot_prediction should return the matplotlib Figure (e.g. fig, axes = plt.subplots(1, 2) ... return fig).",
            "q6/shows the image": "plot_prediction should return the matplotlib Figure (e.g. fig, axes = plt.subplots(1, 2) ... return fig).",
            "q6/ten bars of probabilities": "plot_prediction should return the matplotlib Figure (e.g. fig, axes = plt.subplots(1, 2) ... return fig).",
            "q6/bars labelled 0 to 9": "plot_prediction should return the matplotlib Figure (e.g. fig, axes = plt.subplots(1, 2) ... return fig).",
            "q6/predicted bar stands out": "plot_prediction should return the matplotlib Figure (e.g. fig, axes = plt.subplots(1, 2) ... return fig).",
            "q6/random image and probabilities": "plot_prediction should return the matplotlib Figure (e.g. fig, axes = plt.subplots(1, 2) ... return fig).",
        },
    ),
    Case(
        "fails_q6_no_image",
        "the bar chart alone, without the image: only the image checks fail",
        {
            "plot_prediction": """
def plot_prediction(image, probs):
    probs = np.asarray(probs)
    fig, ax = plt.subplots()
    colors = ["tab:blue"] * 10
    colors[int(np.argmax(probs))] = "tab:red"
    ax.bar(range(10), probs, color=colors)
    ax.set_xticks(range(10))
    return fig
"""
        },
        {"q6": 4},
        feedback={
            "q6/shows the image": "The figure should show the 28x28 image it was given (imshow(image)).",
            "q6/random image and probabilities": "The figure should show the 28x28 image it was given (imshow(image)).",
        },
    ),
    Case(
        "fails_q6_bars_not_labelled",
        "bars without their class labels (matplotlib's default ticks label every other bar): "
        "only the label check fails",
        {
            "plot_prediction": """
def plot_prediction(image, probs):
    probs = np.asarray(probs)
    fig, (left, right) = plt.subplots(1, 2)
    left.imshow(image, cmap="gray")
    colors = ["tab:blue"] * 10
    colors[int(np.argmax(probs))] = "tab:red"
    right.bar(range(10), probs, color=colors)
    return fig
"""
        },
        {"q6": 5},
        feedback={
            "q6/bars labelled 0 to 9": "Label each bar with its class, 0 to 9, on the axis of the classes (e.g. ax.set_xticks(range(10)), or ax.set_yticks(range(10)) for ax.barh).",
        },
    ),
    Case(
        "fails_q6_predicted_bar_not_highlighted",
        "every bar in the same colour: only the highlight checks fail",
        {
            "plot_prediction": """
def plot_prediction(image, probs):
    fig, (left, right) = plt.subplots(1, 2)
    left.imshow(image, cmap="gray")
    right.bar(range(10), probs)
    right.set_xticks(range(10))
    return fig
"""
        },
        {"q6": 4},
        feedback={
            "q6/predicted bar stands out": "Make the predicted class's bar stand out (a different colour, for example).",
            "q6/random image and probabilities": "Make the predicted class's bar stand out (a different colour, for example).",
        },
    ),
    # -- designs a fair TA accepts, and figures judged as a person sees them (issue 17) ------
    Case(
        "passes_all_cnn",
        "a convolutional network (Reshape, Conv2D, MaxPooling2D, Flatten, Dense): any design of "
        "Keras's own layers that meets the spec is judged on its accuracy, by Keras itself",
        {
            "build_model": """
def build_model():
    model = keras.Sequential([
        keras.Input(shape=(28, 28)),
        keras.layers.Reshape((28, 28, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
"""
        },
    ),
    Case(
        "passes_all_batchnorm_rescaling",
        "Rescaling, BatchNormalization and Dropout between Dense layers: judged as any model",
        {
            "build_model": """
def build_model():
    model = keras.Sequential([
        keras.Input(shape=(28, 28)),
        keras.layers.Rescaling(1.0),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model
"""
        },
    ),
    Case(
        "passes_all_tutorial_softmax_layer",
        "the TensorFlow quickstart's way: a Dense(10) of logits wrapped with keras.layers.Softmax() "
        "in a second Sequential; the model outputs probabilities, as asked",
        {
            "build_model": """
def build_model():
    logits = keras.Sequential([
        keras.Input(shape=(28, 28)),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10),
    ])
    model = keras.Sequential([logits, keras.layers.Softmax()])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model
"""
        },
    ),
    Case(
        "passes_all_horizontal_bars",
        "ax.barh: the probabilities as horizontal bars, the classes on the y axis, the predicted "
        "bar red: bars in either orientation are bars",
        {
            "plot_prediction": """
def plot_prediction(image, probs):
    probs = np.asarray(probs)
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
    left.imshow(image, cmap="gray")
    colors = ["tab:blue"] * 10
    colors[int(np.argmax(probs))] = "tab:red"
    right.barh(range(10), probs, color=colors)
    right.set_yticks(range(10))
    right.invert_yaxis()
    return fig
"""
        },
    ),
    Case(
        "passes_all_hardcoded_60000_cell",
        "a cell of the student's own with the book's x_train.reshape((60000, 28, 28)): it fails "
        "only while grading (fewer training images), and the feedback says why; nothing else "
        "depends on it",
        cells=["x_train = x_train.reshape((60000, 28, 28))"],
    ),
    Case(
        "passes_all_tf_nn_activations",
        "TensorFlow's own activations (tf.nn.relu, tf.nn.softmax), as older tutorials write "
        "them: Keras stores tf.nn.softmax as a function named softmax_v2, which is softmax",
        {
            "build_model": """
def build_model():
    import tensorflow as tf

    model = keras.Sequential([
        keras.Input(shape=(28, 28)),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation=tf.nn.relu),
        keras.layers.Dense(10, activation=tf.nn.softmax),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model
"""
        },
    ),
    Case(
        "passes_all_pyplot_percent_bars",
        "pyplot's state machine without plt.figure (plt.subplot, then return plt.gcf()), the "
        "image as uint8 0-255 (imshow shows the same picture), the bars as percentages",
        {
            "plot_prediction": """
def plot_prediction(image, probs):
    probs = np.asarray(probs)
    plt.subplot(1, 2, 1)
    plt.imshow((np.asarray(image) * 255).astype("uint8"), cmap="gray")
    plt.subplot(1, 2, 2)
    bars = plt.bar(range(10), 100 * probs)
    bars[int(np.argmax(probs))].set_color("red")
    plt.xticks(range(10))
    plt.ylabel("probability (%)")
    return plt.gcf()
"""
        },
    ),
    Case(
        "fails_q4d_logits_model_softmax_in_predict_probs",
        "the quickstart's logits model (from_logits=True) with predict_probs wrapping it in "
        "keras.layers.Softmax(): right for the student's own model, so only the output-layer check "
        "charges the missing softmax",
        {
            "build_model": """
def build_model():
    model = keras.Sequential([
        keras.Input(shape=(28, 28)),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model
""",
            "predict_probs": """
def predict_probs(model, images):
    probability_model = keras.Sequential([model, keras.layers.Softmax()])
    return probability_model.predict(images, verbose=0)
""",
        },
        {"q4d": 7},
        feedback={
            "q4d/last layer 10 units softmax": "The last layer should use softmax, so the model outputs class probabilities (without it the model outputs raw scores, 'logits').",
        },
    ),
    Case(
        "fails_q5_single_row_only",
        "np.argmax(probs, axis=1): right for rows, an error for a single row; charged once, by "
        "the one-row check (the first test image is judged as a batch of one row)",
        {
            "top_class": """
def top_class(probs):
    return np.argmax(probs, axis=1)
"""
        },
        {"q5": 3},
        feedback={
            "q5/one row": "Your function top_class() raised an error when the check called it.",
        },
    ),
    Case(
        "fails_q6_returns_fig_and_axes",
        "returns (fig, axes) instead of fig: the figure itself is right, so only the check that "
        "plot_prediction returns the figure fails",
        {
            "plot_prediction": """
def plot_prediction(image, probs):
    probs = np.asarray(probs)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    axes[0].imshow(image, cmap="gray")
    colors = ["tab:blue"] * 10
    colors[int(np.argmax(probs))] = "tab:red"
    axes[1].bar(range(10), probs, color=colors)
    axes[1].set_xticks(range(10))
    return fig, axes
"""
        },
        {"q6": 5},
        feedback={
            "q6/returns the figure": "plot_prediction should return the figure itself (return fig), not a tuple or list that holds it.",
        },
    ),
    Case(
        "fails_q6_image_and_bars_in_one_axes",
        "plt.subplots(1, 2), then plt.imshow and plt.bar: both draw into the right axes, the left "
        "one stays empty; the bar checks say the image and the bars share one axes",
        {
            "plot_prediction": """
def plot_prediction(image, probs):
    probs = np.asarray(probs)
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
    plt.imshow(image, cmap="gray")
    colors = ["tab:blue"] * 10
    colors[int(np.argmax(probs))] = "tab:red"
    plt.bar(range(10), probs, color=colors)
    plt.xticks(range(10))
    return fig
"""
        },
        {"q6": 4},
        feedback={
            "q6/ten bars of probabilities": "Draw the image and the bar chart in two axes side by side (fig, (ax_image, ax_bars) = plt.subplots(1, 2)), the image with ax_image.imshow and the bars with ax_bars.bar: plt.imshow and plt.bar both draw into the last axes made.",
            "q6/random image and probabilities": "Draw the image and the bar chart in two axes side by side (fig, (ax_image, ax_bars) = plt.subplots(1, 2)), the image with ax_image.imshow and the bars with ax_bars.bar: plt.imshow and plt.bar both draw into the last axes made.",
        },
    ),
    # -- predict_probs's rows are probabilities: named, and charged once (issue 22) -----------
    Case(
        "fails_q4d_probs_halved",
        "predict_probs returns half the model's output: rows that sum to 0.5; only the sums "
        "check fails (the values are the model's, scaled)",
        {
            "predict_probs": """
def predict_probs(model, images):
    return model.predict(images, verbose=0) / 2
"""
        },
        {"q4d": 7},
        feedback={
            "q4d/probs sum to one": "Each image's 10 probabilities should be between 0 and 1 and sum to 1, as the softmax layer's output does.",
        },
    ),
    Case(
        "fails_q4d_probs_doubled",
        "predict_probs returns twice the model's output: rows that sum to 2; only the sums check "
        "fails",
        {
            "predict_probs": """
def predict_probs(model, images):
    return model.predict(images, verbose=0) * 2
"""
        },
        {"q4d": 7},
        feedback={
            "q4d/probs sum to one": "Each image's 10 probabilities should be between 0 and 1 and sum to 1, as the softmax layer's output does.",
        },
    ),
    Case(
        "fails_q4d_probs_uniform",
        "predict_probs returns 0.1 for every class: rows that sum to 1, but not the model's "
        "output; the two output checks fail and say so",
        {
            "predict_probs": """
def predict_probs(model, images):
    return np.full((len(images), 10), 0.1)
"""
        },
        {"q4d": 6},
        feedback={
            "q4d/probs are the models output": "predict_probs should return the model's own output for the images it is given (model.predict(images)), unchanged.",
            "q4d/probs of random images": "predict_probs should return the model's own output for the images it is given (model.predict(images)), unchanged.",
        },
    ),
    Case(
        "fails_q4d_probs_one_hot",
        "predict_probs returns one-hot classes ('softmax sets the largest to 1 and the rest to "
        "0'): rows that sum to 1, not the model's output; the two output checks fail and say so",
        {
            "predict_probs": """
def predict_probs(model, images):
    probs = model.predict(images, verbose=0)
    return np.eye(10)[np.argmax(probs, axis=1)]
"""
        },
        {"q4d": 6},
        feedback={
            "q4d/probs are the models output": "predict_probs should return the model's own output for the images it is given (model.predict(images)), unchanged.",
            "q4d/probs of random images": "predict_probs should return the model's own output for the images it is given (model.predict(images)), unchanged.",
        },
    ),
]


# The demo class, what `make grade` grades with no arguments: the reference, the untouched
# starter and typical honest mistakes, one or two per question (none of the hostile cases, which
# wait out time limits on purpose). A variant's demo is those of its bank's cases.
DEMO = (
    "passes_all",
    "untouched_starter",
    "fails_q4a_q4c_reversed_shapes",
    "fails_q4b_label_length_10",
    "fails_hidden_q4a_q4b_q4c_hardcoded_shapes",
    "fails_q4d_logits_without_softmax",
    "fails_q4d_predicts_classes",
    "fails_q5_argmax_axis0",
    "fails_q6_returns_nothing",
    "fails_q6_bars_not_labelled",
)


from .fashion_mnist import FASHION_CASES  # noqa: E402 - they build on Case and CASES above
from .hostile import HOSTILE_CASES  # noqa: E402

ALL_CASES = CASES + HOSTILE_CASES
BANKS = {"mnist": ALL_CASES, "fashion_mnist": FASHION_CASES}


def expected_scores(case: Case) -> dict:
    return {**FULL_MARKS, **case.scores}


def _functions(source: str) -> dict[str, str]:
    """Top-level function definitions in `source`: name -> source text (none in a cell of IPython
    commands, such as the notebook's first cell, `%pip install ...`)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    return {
        node.name: ast.get_source_segment(source, node)
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
    }


def solution_functions(dataset: str = variants.DEFAULT) -> dict[str, str]:
    nb = nbformat.read(variants.get(dataset).solutions_dir / NOTEBOOK_NAME, as_version=4)
    found = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            found.update(_functions(cell.source))
    return found


def make_notebook(case: Case, solutions: dict[str, str], student_notebook: Path) -> str:
    nb = nbformat.read(student_notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code" or "otter_answer_cell" not in cell.metadata.get("tags", []):
            continue
        names = list(_functions(cell.source))
        if case.starter or not names:
            continue
        cell.source = "\n\n\n".join(
            case.functions.get(name, solutions[name]).strip() for name in names
        )
    setup = next(i for i, c in enumerate(nb.cells) if "load_dataset()" in c.source)
    for offset, source in enumerate(case.cells, start=1):
        nb.cells.insert(setup + offset, nbformat.v4.new_code_cell(source.strip()))
    nb.cells += [nbformat.v4.new_code_cell(source.strip()) for source in case.last_cells]
    if case.kernel:
        nb.metadata["kernelspec"] = {
            "name": case.kernel,
            "display_name": case.kernel,
            "language": case.kernel,
        }
    return nbformat.writes(nb)


def build(folder: Path, dataset: str = variants.DEFAULT, only=None) -> list[Path]:
    """Write the dataset's bank into `folder` (a variant's from its build: make assignment);
    `only`: the names of the cases to write (all when None)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*"):
        old.unlink()
    cases = [case for case in BANKS[dataset] if only is None or case.name in only]
    solutions = solution_functions(dataset)
    student_notebook = variants.get(dataset).assignment_dir / NOTEBOOK_NAME
    paths = []
    for case in cases:
        path = folder / f"{case.name}.ipynb"
        if case.link_to:
            path.symlink_to(variants.PROJECT_ROOT / case.link_to)
            paths.append(path)
            continue
        content = make_notebook(case, solutions, student_notebook).encode()
        path.write_bytes(case.damage(content) if case.damage else content)
        paths.append(path)
    (folder / "expected.json").write_text(
        json.dumps(
            {c.name: {"scores": expected_scores(c), "status": c.status} for c in cases},
            indent=1,
        )
    )
    return paths


def markdown() -> str:
    """docs/bank.md: every bank's cases, what each does wrong and what it must score (written by
    `make docs` from the definitions above; a test fails when the committed file is stale)."""
    questions = list(FULL_MARKS)
    header = ["submission", "what it does", *questions, "total", "status"]
    parts = [
        "# The submission bank",
        "",
        "Generated from `tests/bank/` by `make docs`; do not edit by hand. `make test` grades every "
        "case through the real grader and asserts each question's score and maximum, the status, "
        "and for the golden mistakes the first line of feedback of every check they fail, word "
        "for word (`Case.feedback`). A golden mistake named `fails_qX_...` loses points only in "
        "the questions its name gives.",
        "",
        "The demo class, what `make grade` grades with no arguments (`DEMO`; a variant's demo is "
        "those of its bank's cases): " + ", ".join(f"`{name}`" for name in DEMO) + ".",
    ]
    sections = [
        ("Golden submissions (MNIST)", CASES),
        ("Hostile and broken submissions (MNIST)", HOSTILE_CASES),
        ("Fashion-MNIST variant", FASHION_CASES),
    ]
    for title, cases in sections:
        parts += ["", f"## {title}", ""]
        parts.append("| " + " | ".join(header) + " |")
        parts.append("|" + "---|" * len(header))
        for case in cases:
            scores = expected_scores(case)
            cells = [
                f"`{case.name}`",
                case.why.replace("|", "/"),
                *(f"{scores[q]:g}" for q in questions),
                f"{sum(scores.values()):g}",
                case.status,
            ]
            parts.append("| " + " | ".join(cells) + " |")
    return "\n".join(parts) + "\n"
