"""The loader finds MNIST offline and says clearly what to do when it can't."""

import numpy as np
import pytest


@pytest.fixture
def mnist_exercise(exercise):
    return exercise


def test_environment_variable_comes_first(mnist_exercise, data_file, monkeypatch):
    monkeypatch.setenv("MNIST_NPZ", str(data_file))
    (x_train, y_train), (x_test, y_test) = mnist_exercise.load_dataset()
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and x_test.shape == (10000, 28, 28)
    assert y_test[0] == 7


def test_environment_variable_naming_a_missing_file(mnist_exercise, monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_NPZ", str(tmp_path / "nope.npz"))
    with pytest.raises(FileNotFoundError, match="MNIST_NPZ"):
        mnist_exercise.load_dataset()


def test_known_paths_are_searched(mnist_exercise, data_file, monkeypatch, tmp_path):
    monkeypatch.delenv("MNIST_NPZ", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mnist.npz").symlink_to(data_file)
    assert mnist_exercise.find_data_file().resolve() == data_file.resolve()


def test_no_file_and_no_download_gives_a_clear_message(mnist_exercise, monkeypatch, tmp_path):
    monkeypatch.delenv("MNIST_NPZ", raising=False)
    monkeypatch.setattr(mnist_exercise, "KNOWN_DATA_PATHS", [tmp_path / "mnist.npz"])
    import keras

    def offline():
        raise OSError("no internet")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(FileNotFoundError, match="Could not find MNIST") as error:
        mnist_exercise.load_dataset()
    assert "no internet" in str(error.value) and str(tmp_path) in str(error.value)


def test_scaling_gives_float32_in_0_1(mnist_exercise):
    images = np.array([[0, 255]], dtype=np.uint8)
    scaled = mnist_exercise.scale_images(images)
    assert scaled.dtype == np.float32 and scaled.tolist() == [[0.0, 1.0]]
