#!/usr/bin/env bash
# The ThreadSanitizer leg (issue 18): lockprof's compiled core built with -fsanitize=thread for
# the TSan build of free-threaded CPython 3.13, then ci/tsan_workout.py with the GIL off and
# CPython's own suppressions. Fails on any TSan report with a frame in lockprof's code, or a
# crash; reports entirely inside CPython are counted and summarised (ci/tsan_reports.py).
# First a self-check of the detection: a deliberate race in a C file laid out as lockprof's
# must fail the judgement, and the same race in a file elsewhere must only be counted.
# Usage: ci/tsan.sh PYTHON [CYTHON_PYTHON [SECONDS]]        (used by .ci/run)
#   PYTHON         PREFIX/bin/python3.13t of ../shared/tools/build-cpython.sh tsan (its
#                  suppressions are in PREFIX/share)
#   CYTHON_PYTHON  an ordinary CPython 3.9+ (default python3) that runs Cython: the C it writes
#                  is the same for every interpreter, and Cython runs as pure Python under TSan
#                  (about 7 minutes here), while the TSan build then only compiles it
#   SECONDS        the workout's length (default 20)
set -euo pipefail
python=${1:?usage: ci/tsan.sh PYTHON [CYTHON_PYTHON [SECONDS]]}
cython_python=${2:-python3}
seconds=${3:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
suppressions=$(cd "$(dirname "$python")/.." && pwd)/share/tsan-suppressions.txt
[ -f "$suppressions" ] || { echo "no $suppressions: is $python the TSan build?"; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
quiet=report_bugs=0  # pip, Cython and the judge: CPython's own reports are not ours to read

# Cython and setuptools for both interpreters, installed by the ordinary one (pip under TSan
# takes minutes): the TSan build skips the compiled modules of Cython's wheel (another ABI) and
# imports its pure-Python ones.
"$cython_python" -m pip install -q --target "$work/tools" "Cython>=3.1,<4" "setuptools>=77"
export PYTHONPATH="$work/tools"
# A copy of the tree, built in place: nothing generated for another interpreter is reused.
mkdir -p "$work/src"
(cd "$root" && tar cf - --exclude='./build' --exclude='*.so' --exclude='lockprof/_*.c' \
    lockprof setup.py pyproject.toml README.md LICENSE) | tar xf - -C "$work/src"
# setup.py runs Cython as it starts (--name does nothing else); the build then finds the C current.
(cd "$work/src" && "$cython_python" setup.py -q --name >/dev/null)
echo "== lockprof built with -fsanitize=thread ($(TSAN_OPTIONS=$quiet "$python" -VV | head -1))"
(cd "$work/src" && TSAN_OPTIONS=$quiet CFLAGS="-fsanitize=thread -g -O1 -fno-omit-frame-pointer" \
    LDFLAGS="-fsanitize=thread" "$python" setup.py -q build_ext --inplace >/dev/null)

under_tsan() {  # under_tsan NAME ARGS...: run the workout with ARGS, judge its reports
    local logs="$work/$1" status=0 verdict=0
    shift
    mkdir -p "$logs"
    # exitcode=0: the workout's own status stays its own; the reports are judged from the logs
    # (a crash TSan catches then exits 0 too: the judge fails on its ERROR line).
    (cd "$work" && PYTHONPATH="$work/src" PYTHON_GIL=0 \
        TSAN_OPTIONS="suppressions=$suppressions:log_path=$logs/report:exitcode=0:history_size=4" \
        "$python" "$root/ci/tsan_workout.py" "$@") || status=$?
    TSAN_OPTIONS=$quiet "$python" "$root/ci/tsan_reports.py" $(find "$logs" -name 'report.*' | sort) \
        > "$logs/verdict.txt" || verdict=$?
    cat "$logs/verdict.txt"
    [ "$status" -eq 0 ] || echo "the workout exited with status $status"
    [ "$status" -eq 0 ] && [ "$verdict" -eq 0 ]
}

echo "== self-check: a race in lockprof's code must be caught, one elsewhere only counted"
if under_tsan selfcheck --selfcheck "$work/selfcheck"; then
    echo "the deliberate race in lockprof/_tsan_selfcheck.c was not reported: the detection is broken"; exit 1
fi
grep -qE "^  x[0-9]+ +data race: racy_increment" "$work/selfcheck/verdict.txt" \
    || { echo "the self-check failed, but not on its deliberate race"; exit 1; }
grep -qE "[1-9][0-9]* outside it" "$work/selfcheck/verdict.txt" \
    || { echo "the self-check's race outside lockprof's code was not counted"; exit 1; }
echo "== the detection works"

echo "== workout: $seconds s, GIL off, every primitive under profiling"
start=$SECONDS
under_tsan workout --seconds "$seconds" || { echo "== ThreadSanitizer leg FAILED ($((SECONDS - start)) s)"; exit 1; }
echo "== no ThreadSanitizer report in lockprof's code ($((SECONDS - start)) s)"
