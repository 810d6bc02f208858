from otter.test_files import test_case

OK_FORMAT = False

name = "q6"
points = 6

@test_case(points=None, hidden=False)
def test_returns_the_figure(plot_prediction):
    from mnist_exercise import check_plot_returns_figure, exercise_data, scale_images
    image = scale_images(exercise_data()[1][0][0])
    probs = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.6, 0.08, 0.04]
    check_plot_returns_figure(plot_prediction, image, probs)

@test_case(points=None, hidden=False)
def test_shows_the_image(plot_prediction):
    from mnist_exercise import check_plot_image, exercise_data, scale_images
    image = scale_images(exercise_data()[1][0][0])
    probs = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.6, 0.08, 0.04]
    check_plot_image(plot_prediction, image, probs)

@test_case(points=None, hidden=False)
def test_ten_bars_of_probabilities(plot_prediction):
    from mnist_exercise import check_plot_bars, exercise_data, scale_images
    image = scale_images(exercise_data()[1][0][0])
    probs = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.6, 0.08, 0.04]
    check_plot_bars(plot_prediction, image, probs)

@test_case(points=None, hidden=False)
def test_bars_labelled_0_to_9(plot_prediction):
    from mnist_exercise import check_plot_labels, exercise_data, scale_images
    image = scale_images(exercise_data()[1][0][0])
    probs = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.6, 0.08, 0.04]
    check_plot_labels(plot_prediction, image, probs)

@test_case(points=None, hidden=False)
def test_predicted_bar_stands_out(plot_prediction):
    from mnist_exercise import check_plot_highlight, exercise_data, scale_images
    image = scale_images(exercise_data()[1][0][0])
    probs = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.6, 0.08, 0.04]
    check_plot_highlight(plot_prediction, image, probs)

