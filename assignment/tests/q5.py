from otter.test_files import test_case

OK_FORMAT = False

name = "q5"
points = 4

@test_case(points=None, hidden=False)
def test_one_row(top_class):
    import numpy as np
    from mnist_exercise import check_top_class
    check_top_class(top_class, np.array([0.05, 0.1, 0.02, 0.5, 0.03, 0.1, 0.05, 0.05, 0.05, 0.05]))

@test_case(points=None, hidden=False)
def test_several_rows(top_class):
    import numpy as np
    from mnist_exercise import check_top_class
    check_top_class(top_class, np.eye(10)[[3, 1, 4, 1, 5]] * 0.9 + 0.01)

@test_case(points=None, hidden=False)
def test_first_test_image_is_a_seven(top_class):
    from mnist_exercise import check_first_test_image
    check_first_test_image(top_class)

