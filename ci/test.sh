#!/usr/bin/env bash
# Install lockprof from the source tree into a fresh virtual environment made with PYTHON, then
# run the README's test command, the README's example and a benchmark smoke run.
# Usage: ci/test.sh PYTHON [CORE]   (used by .ci/run and by ci/workflows/test.yml)
# CORE is LOCKPROF_CORE for the build and the tests (auto, internals or portable; default auto):
# tests/test_core_mode.py checks that the modules are the core it asks for.
set -euo pipefail
python=${1:?usage: ci/test.sh PYTHON [CORE]}
export LOCKPROF_CORE=${2:-auto}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The install builds from a copy of the tree: .ci/run builds an interpreter's two cores at once,
# and setuptools builds in the tree's build/.
mkdir "$work/src"
tar -C "$root" --exclude=./.git --exclude=./build --exclude='./.venv*' --exclude='./lockprof/*.c' \
    --exclude='./lockprof/*.so' --exclude='*.egg-info' -cf - . | tar -C "$work/src" -xf -

"$python" -m venv "$work/venv"
bin="$work/venv/bin"; [ -d "$bin" ] || bin="$work/venv/Scripts"  # Windows venvs use Scripts/
"$bin/python" -m pip install -q --upgrade pip
if "$bin/python" -c 'import sys, sysconfig; sys.exit(not sysconfig.get_config_var("Py_GIL_DISABLED"))'; then
    # Free-threaded CPython: the test extra less the packages that ship no free-threaded build
    # (their tests skip there, saying so; LOCKPROF_REQUIRE_* still holds on the GIL builds).
    "$bin/python" - "$root/pyproject.toml" > "$work/requirements-ft.txt" <<'EOF'
import re, sys, tomllib
NO_FREE_THREADED_BUILD = {"gevent", "ddtrace", "uvloop"}
with open(sys.argv[1], "rb") as f:
    extra = tomllib.load(f)["project"]["optional-dependencies"]["test"]
for requirement in extra:
    if re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower() not in NO_FREE_THREADED_BUILD:
        print(requirement)
EOF
    (cd "$work/src" && "$bin/python" -m pip install -q . -r "$work/requirements-ft.txt")
else
    (cd "$work/src" && "$bin/python" -m pip install -q ".[test]")  # relative: Windows' bash rewrites /paths
fi
(cd "$work" && "$bin/python" "$root/examples/contention.py")
"$bin/pytest" "$root/tests" -q -p no:cacheprovider
"$bin/python" "$root/benchmarks/measure_lock_overhead.py" --quick
"$bin/python" "$root/benchmarks/bench_contended.py" --quick
"$bin/python" "$root/benchmarks/bench_primitives.py" --quick
"$bin/python" "$root/benchmarks/bench_threads.py" --quick
