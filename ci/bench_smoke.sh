#!/usr/bin/env bash
# A short smoke run of every benchmark, so that none of them rots: lockprof installed from the
# source tree with benchmarks/requirements.txt (ddtrace, PyYAML, Flask, gunicorn, uvicorn) into a fresh
# virtual environment made with PYTHON, then each benchmark at a tiny size. No timing is checked;
# a benchmark that crashes, or a lockprof profile that fails its validation, fails the run.
# Needs wrk (Debian: apt-get install wrk) for the service benchmark and valgrind for
# instructions.py.
# Usage: ci/bench_smoke.sh PYTHON          (used by .ci/run, once, with the newest CPython)
set -euo pipefail
python=${1:?usage: ci/bench_smoke.sh PYTHON}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$python" -m venv "$work/venv"
bin="$work/venv/bin"
"$bin/python" -m pip install -q --upgrade pip
(cd "$root" && "$bin/python" -m pip install -q . -r benchmarks/requirements.txt)
cd "$work"  # outside the source tree: the installed, compiled lockprof is what runs
echo "-- measure_lock_overhead.py --quick --compare ddtrace"
"$bin/python" "$root/benchmarks/measure_lock_overhead.py" --quick --compare ddtrace --json "$work/overhead.json"
echo "-- bench_ddtrace_host.py --quick, bench_span_capture.py --quick"
"$bin/python" "$root/benchmarks/bench_ddtrace_host.py" --quick --json "$work/ddtrace_host.json"
"$bin/python" "$root/benchmarks/bench_span_capture.py" --quick --json "$work/span_capture.json"
echo "-- pytest-benchmark suite, each benchmark run once"
"$bin/python" -m pytest "$root/benchmarks" -q -p no:cacheprovider --benchmark-disable
echo "-- lock_profiler_stress/run.py, every configuration at 2% of its size"
"$bin/python" "$root/benchmarks/lock_profiler_stress/run.py" "$work/stress" --scale 0.02 --repeat 1
echo "-- instructions.py --quick"
"$bin/python" "$root/benchmarks/instructions.py" --quick --json "$work/instructions.json"
echo "-- service/run.py, both applications (gunicorn, uvicorn), one short round per profiler"
"$bin/python" "$root/benchmarks/service/run.py" "$work/service" --apps wsgi,asgi --duration 2 --warmup 1 --rounds 1
echo "-- service/run.py --interleave, the threaded application, two short rounds"
"$bin/python" "$root/benchmarks/service/run.py" "$work/service-interleaved" --apps wsgi --profilers none,lockprof \
    --interleave --duration 1 --warmup 1 --rounds 2
