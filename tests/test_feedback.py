"""The feedback record: what a check says is literally true, and the same in the notebook and
in the grader (unit tests of mnist_exercise's feedback helpers and the grader's error lines)."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_grader import batch, inert, notebook, remote, session, wire


@pytest.fixture(scope="module")
def ex(exercise):
    return exercise


def failure(ex, check, *args):
    with pytest.raises(ex.CheckFailed) as caught:
        check(*args)
    return caught.value.feedback


@pytest.mark.parametrize(
    "value, words",
    [
        (None, "None"),
        (10, "10"),
        ((28, 28, 60000), "(28, 28, 60000)"),
        ("SGD", "'SGD'"),
        (np.int64(7), "7"),
        ((np.int64(60000), 28, 28), "(60000, 28, 28)"),
        (np.array([3, 1, 4]), "array([3, 1, 4])"),
        (np.zeros((60000, 10), dtype=np.float32), "an array of shape (60000, 10) (float32)"),
    ],
)
def test_returned_values_in_pythons_own_words(ex, value, words):
    assert ex.returned(value) == words


def test_a_missing_function_is_named(ex):
    feedback = failure(ex, ex.check_top_class, None, np.ones(10))
    assert feedback.message.startswith("`top_class` is not defined in your notebook")
    assert feedback.got == "None"


def test_an_error_in_the_students_function_is_quoted_not_raised(ex):
    def top_class(probs):
        raise ValueError("bad axis")

    feedback = failure(ex, ex.check_top_class, top_class, np.ones(10))
    assert feedback.message == "Your function top_class() raised an error when the check called it."
    assert feedback.got == "ValueError: bad axis"

    # in the grader the same error arrives from the kernel as text, and reads the same
    def remote(probs):
        raise wire.StudentError("ValueError: bad axis")

    assert failure(ex, ex.check_top_class, remote, np.ones(10)) == feedback


def test_the_graders_own_problems_pass_through(ex):
    def timed_out(probs):
        raise remote.CallTimedOut("your function top_class() did not finish")

    with pytest.raises(remote.CallTimedOut):
        ex.check_top_class(timed_out, np.ones(10))


def test_an_unusable_result_is_feedback_not_a_traceback(ex):
    feedback = failure(ex, ex.check_top_class, lambda probs: object(), np.eye(10)[:3])
    assert feedback.message.startswith("For 3 rows of probabilities")


def test_labels_given_as_the_number_of_classes(ex):
    arrays = (np.zeros((60, 28, 28)), np.zeros(60), np.zeros((7, 28, 28)))
    for labels in (10, (10,)):

        def get_shapes(a, b, c, labels=labels):
            return a.shape, labels, c.shape

        public = failure(ex, ex.check_get_shapes, get_shapes, arrays, 1)
        assert "10 is the number of classes" in public.message
        assert public.expected == "(60,)" and public.got == repr(labels)
        hidden = failure(ex, ex.check_label_count, get_shapes, arrays)
        assert "10 is the number of classes" in hidden.message
        assert hidden.expected == "(60,)" and hidden.got == repr(labels)


def test_hidden_image_counts_never_hide_a_reversed_shape(ex):
    rng = np.random.default_rng(0)
    counts = ex.other_image_counts(rng, 10_000)
    assert 28 not in counts and min(counts) >= 2 and max(counts) <= 49


def test_the_check_seed_comes_from_the_environment(ex, monkeypatch):
    monkeypatch.setenv("MNIST_CHECK_SEED", "1234")
    assert ex.check_seed() == 1234
    monkeypatch.delenv("MNIST_CHECK_SEED")
    assert ex.check_seed() is None


def test_reference_probabilities_of_the_first_test_image(ex):
    probs = ex.first_test_image_probs()
    assert probs.argmax() == ex.FIRST_TEST_CLASS and abs(probs.sum() - 1) < 1e-12


def test_a_tensorflow_error_keeps_its_cause():
    evalue = (
        "Graph execution error:\n\nDetected at node compile_loss/x defined at (most recent call "
        'last):\n  File "<string>", line 6, in <module>\n\n  File "/venv/keras/trainer.py", line '
        "399, in fit\n\nReceived a label value of 9 which is outside the valid range of [0, 5).  "
        "Label values: 1 2 9\n\t [[{{node compile_loss/x}}]] [Op:__inference_step_539]"
    )
    assert session.error_summary("InvalidArgumentError", evalue) == (
        "InvalidArgumentError: Graph execution error: Received a label value of 9 which is "
        "outside the valid range of [0, 5). Label values: 1 2 9"
    )


def test_an_error_summary_is_one_bounded_line():
    summary = session.error_summary("ValueError", "first\n" + "x" * 1000 + "\n[passed] 22/22")
    assert "\n" not in summary and len(summary) <= session.ERROR_SUMMARY_CHARACTERS
    assert session.error_summary("NameError", "name 'probs' is not defined") == (
        "NameError: name 'probs' is not defined"
    )


def test_cells_are_named_as_the_student_sees_them():
    two_functions = "def build_model():\n    pass\n\ndef predict_probs(m, x):\n"
    assert notebook.cell_label(51, two_functions) == (
        "the cell defining build_model and predict_probs (cell 51 from the top)"
    )
    assert notebook.cell_label(53, "# train\nmodel = build_model()\nmodel.fit(x, y)") == (
        "the cell `model = build_model()` (cell 53 from the top)"
    )
    assert notebook.cell_label(9, "def top_class(probs:\n") == (
        "the cell defining top_class (cell 9 from the top)"
    )


@pytest.mark.parametrize(
    "value, shown",
    [
        ("mnist_first_steps.ipynb", "mnist_first_steps.ipynb"),
        ("café 学生 Ω.ipynb", "café 学生 Ω.ipynb"),  # letters of every script stay as they are
        (b"caf\xe9.ipynb", "caf\\xe9.ipynb"),  # Latin-1: a byte that is not UTF-8
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),  # retitles the terminal's window
        ("a\nforged row\r", "a\\nforged row\\r"),
        ("\u202egnp.exe", "\\u202egnp.exe"),  # right-to-left override: shows as exe.png
        ("\u2066x\u2069 \u200f \x85 \x7f", "\\u2066x\\u2069 \\u200f \\x85 \\x7f"),
        ("a\u200bb \U000e0041", "a\\u200bb \\U000e0041"),  # invisible: zero-width, a tag
    ],
)
def test_names_are_shown_inert(value, shown):
    assert inert.name(value) == shown
    assert inert.name(inert.name(value)) == shown  # shown twice, the same


def test_text_keeps_its_lines_and_loses_its_controls():
    assert inert.text("expected: 7\n\tgot: \x1b[31m3\u202e") == (
        "expected: 7\n\tgot: \\x1b[31m3\\u202e"
    )
    data = {"got": "\x1b", "tests": [{"output": "a\nb\u202e"}], "score": 2.5}
    assert inert.strings(data) == {
        "got": "\\x1b",
        "tests": [{"output": "a\nb\\u202e"}],
        "score": 2.5,
    }


def test_the_graders_log_is_inert(tmp_path):
    """The grading child's stderr quotes the student's errors: an ESC, U+202E or a byte that is
    not UTF-8 reached grader.log, which an instructor reads in a terminal."""
    stderr = b"cell 3: error ValueError: \x1b[2J\xe2\x80\xae done \xff\n"
    batch._write_log(tmp_path, ["grade-one", "caf\udce9.ipynb"], 0, 1.0, stderr)
    log = (tmp_path / batch.LOG_NAME).read_bytes().decode("utf-8")
    assert "command: grade-one caf\\xe9.ipynb\n" in log
    assert "ValueError: \\x1b[2J\\u202e done \\xff\n" in log
