#!/usr/bin/env bash
# Install lockprof from the source tree into a fresh virtual environment made with PYTHON, then
# run the README's test command, the README's example and a benchmark smoke run.
# Usage: ci/test.sh PYTHON          (used by .ci/run and by ci/workflows/test.yml)
set -euo pipefail
python=${1:?usage: ci/test.sh PYTHON}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$python" -m venv "$work/venv"
bin="$work/venv/bin"; [ -d "$bin" ] || bin="$work/venv/Scripts"  # Windows venvs use Scripts/
"$bin/python" -m pip install -q --upgrade pip
(cd "$root" && "$bin/python" -m pip install -q ".[test]")  # relative: Windows' bash rewrites /paths
(cd "$work" && "$bin/python" "$root/examples/contention.py")
"$bin/pytest" "$root/tests" -q -p no:cacheprovider
"$bin/python" "$root/benchmarks/measure_lock_overhead.py" --quick
"$bin/python" "$root/benchmarks/bench_contended.py" --quick
"$bin/python" "$root/benchmarks/bench_primitives.py" --quick
"$bin/python" "$root/benchmarks/bench_threads.py" --quick
