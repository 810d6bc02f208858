"""Colab's front-end requests: only "get_ipynb", answered as Colab does ({"ipynb": {...}})."""

import json
import os


def blocking_request(request_type, request="", timeout_sec=5, parent=None):
    if request_type != "get_ipynb":
        raise ValueError(f"the stub answers only get_ipynb, not {request_type!r}")
    with open(os.environ["COLAB_STUB_NOTEBOOK"], encoding="utf-8") as handle:
        return {"ipynb": json.load(handle)}
