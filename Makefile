# The instructor's commands. `make help` lists them.
# A fresh machine needs nothing but Debian's python3 (with venv) and make: the first command
# creates .venv and installs the pinned requirements.

# Debian's python, not pyenv's: the sandboxed kernel runs as an unprivileged user, who must be
# able to execute the venv's interpreter (pyenv lives under /root, mode 700).
BASE_PYTHON ?= /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
# The install stamp is named by requirements.txt's content, not dated: a fresh clone beside an
# existing venv (its requirements.txt newer than the stamp) installs nothing when the pins are
# the same, and any change to the pins installs again.
STAMP := $(VENV)/.installed-$(firstword $(shell sha256sum requirements.txt))
export MNIST_NPZ ?= $(abspath $(firstword $(wildcard ../shared/datasets/mnist.npz)))

# DATASET=fashion_mnist: the same exercise on Fashion-MNIST, built under build/fashion_mnist/.
DATASET ?= mnist
ifeq ($(DATASET),mnist)
CHECKS := autograder/dist/autograder/tests
BANK := build/bank
DEMO := build/demo
else
CHECKS := build/$(DATASET)/dist/autograder/tests
BANK := build/$(DATASET)/bank
DEMO := build/$(DATASET)/demo
endif
# the demo class: a few of the bank's cases (tests/bank: DEMO), quick to grade (make bench times it)
SUBMISSIONS ?= $(DEMO)
OUT ?= grades
JOBS ?= 2
# when students see the hidden checks' results on Gradescope (python -m mnist_grader autograder
# --help): after_due_date, after_published, hidden or visible
HIDDEN_VISIBILITY ?= after_due_date
# grading limits for `make grade`, e.g. LIMITS="--cell-seconds 30 --check-seconds 10"
LIMITS ?=
MASTER := autograder/master/mnist_first_steps.ipynb autograder/master/mnist_exercise.py \
	autograder/master/answers_pdf.py requirements.txt \
	solutions/rubric.md mnist_grader/variants.py

.PHONY: help setup assignment checks autograder bank grade test gradescope-check lint bench mutants docs \
	clean

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: $(STAMP)  ## create .venv and install the pinned requirements

$(STAMP):
	test -x $(PY) || $(BASE_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed*
	touch $@

assignment: $(STAMP)  ## rebuild assignment/ and solutions/ from autograder/master/ [DATASET=]
	$(PY) -m mnist_grader assign --dataset $(DATASET)

$(CHECKS): $(MASTER) $(STAMP)
	$(PY) -m mnist_grader assign --dataset $(DATASET)

checks: $(CHECKS)  ## build the checks (public + hidden) if the master changed

autograder: $(CHECKS)  ## build autograder/autograder.zip for Gradescope [DATASET= HIDDEN_VISIBILITY=]
	$(PY) -m mnist_grader autograder --dataset $(DATASET) --hidden-visibility $(HIDDEN_VISIBILITY)

bank: $(CHECKS)  ## write the submission bank's notebooks into build/bank/ [DATASET=]
	$(PY) -m tests.bank $(BANK) --dataset $(DATASET)

grade: $(CHECKS)  ## grade SUBMISSIONS (a .ipynb, a folder or a Gradescope export; default: the demo class) into OUT [DATASET= LIMITS=]
	@if [ "$(SUBMISSIONS)" = "$(BANK)" ]; then $(PY) -m tests.bank $(BANK) --dataset $(DATASET); fi
	@if [ "$(SUBMISSIONS)" = "$(DEMO)" ]; then $(PY) -m tests.bank $(DEMO) --dataset $(DATASET) --demo; fi
	$(PY) -m mnist_grader grade "$(SUBMISSIONS)" --out "$(OUT)" --jobs $(JOBS) --dataset $(DATASET) $(LIMITS)

test: $(STAMP)  ## run the test suite (grades the whole bank through the real grader)
	$(PY) -m pytest -q --durations=8

gradescope-check: autograder  ## the zip as Gradescope runs it: Python 3.10, Docker's capabilities, 1 CPU, 768 MB (in make test)
	$(PY) -m pytest -q tests/test_gradescope_like.py

bench: $(STAMP)  ## time and memory (one submission vs otter run and its phases, TensorFlow's threads under a CPU quota, Gradescope's settings, warm vs cold kernels, the demo, CPU groups) into docs/performance.md
	$(PY) -m tests.bench_cold
	$(PY) -m tests.bench_quota
	$(PY) -m tests.bench
	$(PY) -m tests.bench_warm
	$(PY) -m tests.bench_demo
	$(PY) -m tests.bench_cpu

docs: $(STAMP)  ## rebuild the generated docs (docs/bank.md; the points, limits and bars the README and docs repeat)
	$(PY) -m tests.bank --markdown docs/bank.md
	$(PY) -m tests.docs_fragments

mutants: $(STAMP)  ## break each check and protection on purpose; which test catches it (slow)
	$(PY) -m tests.mutants

lint: $(STAMP)  ## ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:  ## remove what the build made (keeps .venv)
	rm -rf build grades autograder/dist autograder/autograder.zip .pytest_cache
