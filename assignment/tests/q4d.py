from otter.test_files import test_case

OK_FORMAT = False

name = "q4d"
points = 8

@test_case(points=None, hidden=False)
def test_model_takes_28x28_images(build_model):
    from mnist_exercise import check_model_input
    check_model_input(build_model)

@test_case(points=None, hidden=False)
def test_last_layer_10_units_softmax(build_model):
    from mnist_exercise import check_model_output
    check_model_output(build_model)

@test_case(points=None, hidden=False)
def test_compiled_adam_sparse_crossentropy(build_model):
    from mnist_exercise import check_model_compiled
    check_model_compiled(build_model)

@test_case(points=None, hidden=False)
def test_probs_shape(predict_probs):
    from mnist_exercise import check_predict_probs_shape, exercise_data, scale_images
    check_predict_probs_shape(predict_probs, scale_images(exercise_data()[1][0][:5]))

@test_case(points=None, hidden=False)
def test_probs_sum_to_one(predict_probs):
    from mnist_exercise import check_predict_probs_sum_to_one, exercise_data, scale_images
    check_predict_probs_sum_to_one(predict_probs, scale_images(exercise_data()[1][0][:5]))

@test_case(points=None, hidden=False)
def test_probs_are_the_models_output(predict_probs, build_model):
    from mnist_exercise import check_predict_probs_output, exercise_data, scale_images
    images = scale_images(exercise_data()[1][0][:5])
    check_predict_probs_output(predict_probs, images, build_model=build_model)

