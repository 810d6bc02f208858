from otter.test_files import test_case

OK_FORMAT = False

name = "q4c"
points = 2

@test_case(points=None, hidden=False)
def test_test_images_shape(get_shapes):
    from mnist_exercise import check_get_shapes, exercise_data
    (x_train, y_train), (x_test, _) = exercise_data()
    check_get_shapes(get_shapes, (x_train, y_train, x_test), which=2)

