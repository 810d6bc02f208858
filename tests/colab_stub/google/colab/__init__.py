"""A stand-in for Colab's `google.colab` package, for tests/test_pdf_without_latex.py.

Colab itself can't run here; this imitates the two things the export cell uses: the front-end
request for the notebook the editor holds (`_message.blocking_request("get_ipynb")`), answered
from the file $COLAB_STUB_NOTEBOOK, and `files.download`, recorded in $COLAB_STUB_DOWNLOADS.
`google` stays a namespace package (no google/__init__.py), so protobuf's google.protobuf still
imports beside it.
"""
