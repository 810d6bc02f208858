"""The Fashion-MNIST variant's own bank: the reference, the starter, and mistakes it must catch.

Built from build/fashion_mnist/ (`make assignment DATASET=fashion_mnist`): the same functions, with
the variant's solution (class names on the bars) as the reference.
"""

from . import CASES, Case

SHARED = ("passes_all", "untouched_starter", "fails_q4d_logits_without_softmax")

FASHION_CASES = [case for case in CASES if case.name in SHARED] + [
    Case(
        "fails_q5_argmax_axis0",
        "np.argmax(probs, axis=0): right for one row (the ankle boot), wrong for several rows",
        {"top_class": "def top_class(probs):\n    return np.argmax(probs, axis=0)"},
        {"q5": 2},
    ),
    Case(
        "fails_q6_digit_labels",
        "the MNIST plot, bars labelled 0-9 instead of the class names: only the label check fails",
        {
            "plot_prediction": """
def plot_prediction(image, probs):
    probs = np.asarray(probs)
    fig, (left, right) = plt.subplots(1, 2)
    left.imshow(image, cmap="gray")
    colors = ["tab:blue"] * 10
    colors[int(np.argmax(probs))] = "tab:red"
    right.bar(range(10), probs, color=colors)
    right.set_xticks(range(10))
    return fig
"""
        },
        {"q6": 5},
    ),
]
