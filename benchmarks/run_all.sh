#!/usr/bin/env bash
# The full benchmark run behind docs/overhead.md. Run it on a quiet machine (nothing else
# running: the figures are ratios and latencies measured on shared cores), one interpreter after
# the other, never two at once:
#
#   benchmarks/run_all.sh RESULTS_DIR PYTHON [PYTHON...]
#   benchmarks/run_all.sh /tmp/results $(for v in 3.9 3.10 3.11 3.12 3.13; do command -v python$v; done)
#
# For each PYTHON: a fresh virtual environment with lockprof installed from this checkout and
# benchmarks/requirements.txt (ddtrace, PyYAML, Flask, gunicorn, uvicorn), then, from outside the source
# tree, into RESULTS_DIR/<python version>/:
#   overhead.txt/.json   measure_lock_overhead.py --compare ddtrace (the seeds' table, targets)
#   pytest.txt/.json     the pytest-benchmark suite (--benchmark-only)
#   stress/              lock_profiler_stress/run.py, every configuration, 5 repetitions
#   service/             service/run.py, both applications, 5 rounds of 20 s per profiler (needs wrk)
# PARTS="overhead stress" limits a run to some of the four. About 30 minutes per interpreter.
set -euo pipefail
results=${1:?usage: benchmarks/run_all.sh RESULTS_DIR PYTHON [PYTHON...]}
shift
[ $# -gt 0 ] || { echo "usage: benchmarks/run_all.sh RESULTS_DIR PYTHON [PYTHON...]" >&2; exit 2; }
parts=${PARTS:-overhead pytest stress service}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$results"
results=$(cd "$results" && pwd)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$root" status --porcelain 2>/dev/null | grep -q . && echo " (uncommitted changes)" || true)
failed=()

for python in "$@"; do
    version=$("$python" -c 'import platform; print(platform.python_version())')
    out="$results/$version"
    venv="$results/venv-$version"
    echo "== CPython $version ($python), lockprof at $commit$dirty -> $out"
    rm -rf "$venv" && mkdir -p "$out"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    (cd "$root" && "$venv/bin/python" -m pip install -q . -r benchmarks/requirements.txt)
    echo "lockprof $commit$dirty, $(date -u '+%Y-%m-%d %H:%M:%S UTC')" > "$out/commit.txt"
    cd "$out"  # outside the source tree: the installed, compiled lockprof is what runs
    for part in $parts; do
        echo "-- $part ($(date -u +%H:%M:%S))"
        # A part that fails (a crashed run, a profile that fails its check) is reported at the
        # end; the other parts and interpreters still run.
        case $part in
            overhead) "$venv/bin/python" "$root/benchmarks/measure_lock_overhead.py" --compare ddtrace \
                          --json "$out/overhead.json" | tee "$out/overhead.txt" || failed+=("$version $part") ;;
            pytest) "$venv/bin/python" -m pytest "$root/benchmarks" -p no:cacheprovider --benchmark-only \
                        --benchmark-json "$out/pytest.json" | tee "$out/pytest.txt" || failed+=("$version $part") ;;
            stress) "$venv/bin/python" "$root/benchmarks/lock_profiler_stress/run.py" "$out/stress" --repeat 5 \
                        || failed+=("$version $part") ;;
            service) "$venv/bin/python" "$root/benchmarks/service/run.py" "$out/service" --rounds 5 --duration 20 \
                         || failed+=("$version $part") ;;
            *) echo "unknown part $part (overhead, pytest, stress, service)" >&2; exit 2 ;;
        esac
    done
done
echo "== done: $results/<version>/ (overhead.txt, pytest.txt, stress/summary.md, service/service.md)"
if [ ${#failed[@]} -gt 0 ]; then
    printf '== FAILED: %s\n' "${failed[@]}"
    exit 1
fi
