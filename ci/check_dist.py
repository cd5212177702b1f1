"""Check what the built artefacts contain: python ci/check_dist.py WHEEL SDIST.

The wheel must hold the compiled core, the Python modules, the stubs and py.typed, and none of
the build intermediates (.c), the Cython sources or the tests; the sdist must hold everything a
build from source needs. Both must carry the metadata users and indexes read.
"""

from __future__ import annotations

import glob
import os
import sys
import tarfile
import zipfile
from email.parser import Parser

COMPILED = ("_lock", "_recorder", "_sampler")
# The C headers and Cython includes of this source tree, all needed to build from the sdist.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_FILES = sorted(os.path.relpath(path, ROOT).replace(os.sep, "/")
                     for pattern in ("*.h", "*.pxi") for path in glob.glob(os.path.join(ROOT, "lockprof", pattern)))


def check_wheel(path: str) -> list:
    problems = []
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        check_metadata(wheel.read(metadata).decode(), problems)
    for module in COMPILED:
        if not any(n.startswith(f"lockprof/{module}.") and n.endswith((".so", ".pyd")) for n in names):
            problems.append(f"wheel: no compiled lockprof/{module} extension")
        if f"lockprof/{module}.pyi" not in names:
            problems.append(f"wheel: no lockprof/{module}.pyi stub")
    if "lockprof/py.typed" not in names:
        problems.append("wheel: no lockprof/py.typed")
    if "lockprof/_bootstrap/sitecustomize.py" not in names:  # lockprof run --subprocesses
        problems.append("wheel: no lockprof/_bootstrap/sitecustomize.py")
    for needed in ("lockprof-ddtrace.pth", "lockprof/integrations/ddtrace.py"):  # docs/ddtrace.md
        if needed not in names:
            problems.append(f"wheel: no {needed}")
    for name in names:
        if name.endswith((".c", ".pyx", ".pxd", ".h")) or name.startswith(("tests/", "benchmarks/")):
            problems.append(f"wheel: should not contain {name}")
    return problems


def check_sdist(path: str) -> list:
    problems = []
    with tarfile.open(path) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
        pkg_info = next(m for m in sdist.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO"))
        check_metadata(sdist.extractfile(pkg_info).read().decode(), problems)
    needed = ["pyproject.toml", "setup.py", "LICENSE", "README.md", "lockprof/_lockcore.pxd",
              "lockprof/_bootstrap/sitecustomize.py", "lockprof-ddtrace.pth", *BUILD_FILES]
    needed += [f"lockprof/{m}.{ext}" for m in COMPILED for ext in ("pyx", "pxd", "pyi")]
    # The benchmarks run from an unpacked sdist: their data files come along with the scripts.
    needed += ["benchmarks/requirements.txt", "benchmarks/lock_profiler_stress/config.yaml", "benchmarks/run_all.sh"]
    problems += [f"sdist: missing {name}" for name in needed if name not in names]
    if not any(name.startswith("tests/") for name in names):
        problems.append("sdist: no tests")
    problems += [f"sdist: should not contain {n}" for n in names if n.endswith((".so", ".pyd"))]
    problems += [f"sdist: generated C shipped: {n}" for n in names if n.startswith("lockprof/") and n.endswith(".c")]
    return problems


def check_metadata(text: str, problems: list) -> None:
    message = Parser().parsestr(text)
    for field in ("Name", "Version", "Summary", "Requires-Python", "License-Expression"):
        if not message.get(field):
            problems.append(f"metadata: no {field}")
    if not message.get_all("Project-URL"):
        problems.append("metadata: no Project-URL")
    if "lockprof" not in (message.get_payload() or ""):
        problems.append("metadata: the long description (README) is missing")


def main(argv: list) -> int:
    if len(argv) != 3:
        print("usage: python ci/check_dist.py WHEEL SDIST", file=sys.stderr)
        return 2
    problems = check_wheel(argv[1]) + check_sdist(argv[2])
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"check_dist: {'FAILED' if problems else 'ok'}: {argv[1]}, {argv[2]}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
