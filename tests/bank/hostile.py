"""Hostile and broken submissions: each gets a result, and no trick earns a point.

A trick played on top of the untouched starter must still score 0 (what the starter scores);
one played beside a complete solution must not cost the questions it does not touch.
"""

import io
import zipfile

from . import FULL_MARKS, Case

ZERO = {q: 0 for q in FULL_MARKS}
PLANTED_PTH = "zz_planted_by_a_submission.pth"  # tests/test_hostile.py checks it never appears


def _zipped(notebook: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mnist_first_steps.ipynb", notebook)
    return buffer.getvalue()


FOREVER = "while True:\n    pass"
# Retitles the terminal's window, clears it, and reverses the text after it (U+202E).
HOSTILE_TEXT = "\x1b]0;pwned\x07\x1b[2J\u202egnp.exe"

# Places where a results.json or the checks could be, as a submission would guess them.
GUESS_PATHS = """
import glob, os
TARGETS = ["results.json", "../results.json", "/autograder/results/results.json"]
TARGETS += glob.glob("/tmp/**/results.json", recursive=True)
TARGETS += glob.glob("/work/**/results.json", recursive=True)
TARGETS += glob.glob("/root/**/results.json", recursive=True)
FORGED = '{"score": 22, "tests": [{"name": "q4a", "score": 22, "max_score": 2}]}'
"""

HOSTILE_CASES = [
    Case(
        "hangs_in_top_class",
        "top_class never returns: only Q5 is lost, by time-outs",
        {"top_class": f"def top_class(probs):\n    {FOREVER.replace(chr(10), chr(10) + '    ')}"},
        {"q5": 0},
    ),
    Case(
        "hangs_at_top_level",
        "a cell loops forever: it is interrupted, everything else counts",
        cells=[FOREVER],
    ),
    Case(
        "hangs_ignoring_interrupts",
        "a cell ignores SIGINT and loops: the kernel is replaced, the cells before it run again",
        cells=["import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n" + FOREVER],
    ),
    Case(
        "calls_sys_exit",
        "sys.exit() in a cell: IPython turns it into an error, nothing lost",
        cells=["import sys\nsys.exit()"],
    ),
    Case(
        "calls_os_exit",
        "os._exit(0) kills the kernel: that cell is skipped, nothing else lost",
        cells=["import os\nos._exit(0)"],
    ),
    Case(
        "exits_in_three_cells",
        "os._exit in three cells: after two restarts the grader gives the kernel up; every "
        "check says why",
        scores=ZERO,
        status="kernel died",
        cells=["import os\nos._exit(0)"] * 3,
    ),
    Case(
        "memory_bomb",
        "allocates 80 GB: the memory limit turns it into a MemoryError",
        cells=["import numpy as np\nhuge = np.ones(10**10)\nhuge[:] = 1"],
    ),
    Case(
        "syntax_error_in_top_class",
        "top_class's cell does not parse: only Q5 is lost",
        {"top_class": "def top_class(probs)\n    return np.argmax(probs, axis=-1)"},
        {"q5": 0},
    ),
    Case(
        "raises_in_every_function",
        "every function raises: 0 everywhere, with the error",
        {
            name: f"def {name}(*args):\n    raise ValueError('not done yet')"
            for name in (
                "get_shapes",
                "build_model",
                "predict_probs",
                "top_class",
                "plot_prediction",
            )
        },
        ZERO,
    ),
    Case(
        "patches_the_checks",
        "the starter plus patches to otter, numpy and builtins that would "
        "make in-kernel checks pass: the checks don't run there, so still 0",
        starter=True,
        scores=ZERO,
        cells=[
            """
import builtins, numpy
try:
    import otter.test_files.exception_test as et
    et.ExceptionTestFile.run = lambda self, env: None
    et.test_case.call_func = lambda self, env: None
except Exception:
    pass
numpy.allclose = lambda *a, **k: True
numpy.array_equal = lambda *a, **k: True
builtins.isinstance = lambda *a: True
class Everything:
    def __eq__(self, other): return True
    shape = (60000, 28, 28)
get_shapes = lambda *a: (Everything(), Everything(), Everything())
"""
        ],
    ),
    Case(
        "writes_results_json",
        "writes forged results.json files wherever it can, now and from "
        "a background process 20 s later: they are not the grader's, and it is killed",
        starter=True,
        scores=ZERO,
        cells=[
            GUESS_PATHS
            + """
for target in TARGETS:
    try:
        open(target, "w").write(FORGED)
    except OSError:
        pass
import subprocess, sys
script = "import time, glob\\ntime.sleep(20)\\n" + "\\n".join(
    f"try:\\n    open({t!r}, 'w').write({FORGED!r})\\nexcept OSError:\\n    pass" for t in TARGETS)
subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
"""
        ],
    ),
    Case(
        "reads_the_checks",
        "looks for the hidden checks, the master notebook and the solutions (also in the "
        "checkout that holds its venv) and puts them in its error messages: it can't read them, "
        "they never reach the feedback",
        starter=True,
        scores=ZERO,
        cells=[
            """
import glob, os, sys
found, readable = [], []
# The venv lives in a checkout: by its name, and where it really is (a .venv may be a link).
checkouts = sorted({os.path.dirname(sys.prefix), os.path.dirname(os.path.realpath(sys.prefix))})
private = [checkout + path for checkout in checkouts for path in (
    "/autograder/master/mnist_exercise.py", "/solutions/rubric.md", "/tests/bank/__init__.py",
    "/.git/config")]
for pattern in ["/work/**/tests/q*.py", "/tmp/**/tests/q*.py", "/autograder/**/q*.py",
                "/work/**/master/*.ipynb", "/work/**/solutions/*.ipynb", *private]:
    for path in glob.glob(pattern, recursive=True):
        try:
            found.append(open(path).read())
        except OSError:
            pass
        else:
            readable += [path] if path in private else []
raise RuntimeError(f"LEAK readable={readable} checkouts={checkouts} "
                   + " ".join(found).replace("\\n", " ")[:4000])
"""
        ],
    ),
    Case(
        "tampers_with_shared_files",
        "tries to change numpy in the venv, the data, /tmp and the "
        "output folder for the submissions after it: every write is refused",
        starter=True,
        scores=ZERO,
        cells=[
            """
import glob, os, numpy
for target in [numpy.__file__, os.environ.get("MNIST_NPZ", "") + "/x_test.npy",
               "/tmp/evil.py", "/tmp/sitecustomize.py"]:
    try:
        with open(target, "a") as handle:
            handle.write("\\nimport numpy; numpy.argmax = lambda *a, **k: 7\\n")
    except OSError:
        pass
"""
        ],
    ),
    Case(
        "truncated_notebook",
        "the file is cut in half: not a notebook, 0 with the reason",
        scores=ZERO,
        status="unreadable",
        damage=lambda data: data[: len(data) // 2],
    ),
    Case(
        "empty_file", "an empty upload", scores=ZERO, status="unreadable", damage=lambda data: b""
    ),
    Case(
        "not_utf8",
        "a file in another encoding",
        scores=ZERO,
        status="unreadable",
        damage=lambda data: data.decode().encode("utf-16"),
    ),
    Case(
        "plants_links_then_restarts",
        "replaces the files of its own folder with links to a .pth in the venv and to a folder "
        "elsewhere, then kills its kernel so that the restart writes them: the launcher writes "
        "nothing there as root, so no .pth appears and the starter still scores 0",
        starter=True,
        scores=ZERO,
        cells=[
            f"""
import os, sys, sysconfig
PTH = os.path.join(sysconfig.get_paths()["purelib"], "{PLANTED_PTH}")
if os.access(PTH, os.W_OK):  # the launcher made the .pth ours: fill it in
    open(PTH, "w").write("import os\\n")
for name, target in [("kernel.json", PTH), ("mnist_exercise.py", PTH), ("tmp", "/etc")]:
    try:
        os.rename(name, name + ".old")
        os.symlink(target, name)
    except OSError:
        pass
""",
            "import os\nos._exit(0)",
        ],
    ),
    Case(
        "copies_a_classmate",
        "finds the folder of submissions from the grading process's command line in /proc and "
        "runs a complete classmate's code: it cannot read that folder, so the starter scores 0",
        starter=True,
        scores=ZERO,
        cells=[
            """
import glob, json, os
folders = set()
for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
    try:
        words = open(cmdline, "rb").read().decode(errors="replace").split("\\0")
    except OSError:
        continue
    folders.update(os.path.dirname(w) for w in words if w.endswith(".ipynb"))
    folders.update(w for w in words if os.path.isdir(w))
for folder in folders:
    for path in sorted(glob.glob(os.path.join(folder, "*.ipynb"))):
        try:
            cells = json.load(open(path))["cells"]
        except Exception:
            continue
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        if any("axis=-1" in c for c in code) and not any("classmate" in c for c in code):
            for c in code:
                if "grader" not in c:
                    try:
                        exec(c, globals())
                    except Exception:
                        pass
"""
        ],
    ),
    Case(
        "fills_the_disk",
        "writes up to 1 GB each into /dev/shm, /tmp and its own folder: its own small private "
        "tmpfs fills up instead (where the machine allows mount namespaces), and it scores 0",
        starter=True,
        scores=ZERO,
        cells=[
            """
import os
for folder in ("/dev/shm", "/tmp", "."):
    try:
        with open(os.path.join(folder, "filler"), "wb") as handle:
            for _ in range(1024):
                handle.write(b"x" * 2**20)
    except OSError:
        pass
"""
        ],
    ),
    Case(
        "forges_report_lines",
        "top_class raises an error whose message imitates passed checks and a full score: it "
        "stays one line of an error, and only Q5 is lost",
        {
            "top_class": "def top_class(probs):\n    raise ValueError("
            "'no\\n[passed] check: one row (1/1)\\nAutograded score: 22 / 22')"
        },
        {"q5": 0},
    ),
    Case(
        "leaves_ipc_and_lock_files",
        "starter + a file in /run/lock and a System V shared memory segment, for the next "
        "submission to find: the kernel has its own of both (or they are swept), and it scores 0",
        starter=True,
        scores=ZERO,
        cells=[
            """
import ctypes
for folder in ("/run/lock", "/var/lock", "/var/tmp"):
    try:
        open(f"{folder}/left_by_a_submission", "w").write("for the next one")
    except OSError:
        pass
libc = ctypes.CDLL(None)
segment = libc.shmget(0x4D4E4953, 2**20, 0o1666)  # IPC_CREAT | 0666
"""
        ],
    ),
    Case(
        "fills_its_answer_folder",
        "starter + 800 MB written into the folder its answers go to: that folder is a 512 MB "
        "tmpfs (where root may mount), the writes fail, and it scores 0",
        starter=True,
        scores=ZERO,
        cells=[
            """
import os
for n in range(4):
    try:
        with open(os.path.join("..", "out", f"filler{n}"), "wb") as handle:
            for _ in range(200):
                handle.write(b"x" * 2**20)
    except OSError:
        break
"""
        ],
    ),
    Case(
        "forges_an_error_name",
        "a complete solution plus a cell raising an exception whose class name holds lines "
        "imitating the report: it shows as one line, nothing lost",
        cells=[
            'E = type("ValueError\\n  - [passed] everything (22/22)\\nAutograded score: 22 / 22",'
            " (Exception,), {})\nraise E('boom')"
        ],
    ),
    Case(
        "null_byte_in_a_cell",
        "a complete solution with a cell holding a NUL character: that cell fails, nothing else",
        cells=["x = 1  # \0"],
    ),
    Case(
        "link_to_the_solution",
        "the upload is a symbolic link to the reference solution: not a notebook file, 0",
        scores=ZERO,
        status="unreadable",
        link_to="solutions/mnist_first_steps.ipynb",
    ),
    Case(
        "zip_bomb",
        "a zip whose notebook unpacks to 30 MB (the limit is 20): refused unread, 0",
        scores=ZERO,
        status="unreadable",
        damage=lambda data: _zipped(data[:-2] + b" " * 30 * 2**20 + data[-2:]),
    ),
    Case(
        "shows_hostile_text",
        "a complete solution, but top_class returns an object whose repr holds terminal escapes "
        "and a right-to-left override, and a cell raises an error holding them: only Q5 is "
        "lost, and results.json, grader.log and the report spell them out",
        {
            "top_class": "def top_class(probs):\n"
            "    class Shown:\n"
            "        def __repr__(self):\n"
            f"            return {HOSTILE_TEXT!r} + '7' * 150\n"
            "    return Shown()"
        },
        {"q5": 0},
        cells=[f"raise ValueError({HOSTILE_TEXT!r})"],
    ),
    Case(
        "leaves_a_deep_folder",
        "starter + a world-writable folder 3000 levels deep in /tmp, /var/tmp and /dev/shm: gone "
        "with its private tmpfs, or removed by the sweep (which walks it without recursion), "
        "and the submissions after it in its slot are graded as usual; it scores 0",
        starter=True,
        scores=ZERO,
        cells=[
            """
import os
for folder in ("/tmp", "/var/tmp", "/dev/shm"):
    try:
        os.chdir(folder)
        for _ in range(3000):
            os.mkdir("deep", 0o777)
            os.chmod("deep", 0o777)  # every uid's sweep may walk it
            os.chdir("deep")
    except OSError:
        pass
os.chdir(os.environ["HOME"])
"""
        ],
    ),
    Case(
        "model_too_large_to_check",
        "a complete solution whose last cell makes `model` an untrained model with a layer of "
        "187500 units (its weights are small: a 10-unit layer before and after it): "
        "recomputing its accuracy takes 1.5 GB per batch of images, past --grader-memory-mb, "
        "so that check fails saying so, the status is 'grading out of memory', and the batch "
        "goes on",
        scores={"q4d": FULL_MARKS["q4d"] - 1},  # the accuracy check alone
        status="grading out of memory",
        last_cells=[
            """
model = keras.Sequential([
    keras.Input((28, 28)),
    keras.layers.Flatten(),
    keras.layers.Dense(10, activation="relu"),
    keras.layers.Dense(187500, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
"""
        ],
    ),
    Case(
        "foreign_kernelspec",
        "a complete solution whose metadata names a Julia kernel: the "
        "grader always uses its own Python kernel",
        kernel="julia-1.9",
    ),
]
