#!/usr/bin/env bash
# Build the compiled core with AddressSanitizer and UndefinedBehaviorSanitizer and run the test
# suite (all but the slow runs) against it; with --valgrind, also run the core's tests under
# valgrind's memcheck with the normal build. Any sanitizer report fails the run.
# Usage: ci/sanitizers.sh [PYTHON] [--valgrind]       (documented in docs/robustness.md)
#
# CPython itself is not built with ASan: libasan is preloaded into the ordinary interpreter,
# leak detection is off (the interpreter keeps memory until exit on purpose), and
# PYTHONMALLOC=malloc sends Python's objects through the instrumented malloc too.
set -euo pipefail
python=python3
valgrind=0
for arg in "$@"; do
    case "$arg" in
        --valgrind) valgrind=1 ;;
        *) python=$arg ;;
    esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip
# opentelemetry-sdk (pure Python): the trace-correlation tests read its spans from the core.
"$work/venv/bin/python" -m pip install -q "Cython>=3.0,<4" "setuptools>=77" pytest pytest-benchmark opentelemetry-sdk

build() {  # build(DIR, CFLAGS, LDFLAGS): a copy of the source tree with the core built in place
    mkdir -p "$1"
    (cd "$root" && tar cf - --exclude='./build' --exclude='*.so' --exclude='lockprof/_*.c' \
        lockprof setup.py pyproject.toml README.md LICENSE tests docs) | tar xf - -C "$1"
    (cd "$1" && CFLAGS="$2" LDFLAGS="$3" "$work/venv/bin/python" setup.py -q build_ext --inplace >/dev/null)
}

sanitized="$work/asan"
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
build "$sanitized" "$flags" "-fsanitize=address,undefined"
libasan=$(${CC:-gcc} -print-file-name=libasan.so)
echo "== AddressSanitizer + UndefinedBehaviorSanitizer ($("$work/venv/bin/python" -V), $libasan)"
log="$work/asan.log"
set +e
(cd "$sanitized" && env LD_PRELOAD="$libasan" PYTHONMALLOC=malloc \
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$work/venv/bin/python" -m pytest tests -q -p no:cacheprovider -m "not slow" 2>&1) | tee "$log"
status=${PIPESTATUS[0]}
set -e
if grep -qE "ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer" "$log"; then
    echo "sanitizer errors reported (above)"; exit 1
fi
[ "$status" -eq 0 ] || { echo "tests failed under the sanitizers (exit $status)"; exit 1; }
echo "== no sanitizer error"

if [ "$valgrind" -eq 1 ]; then
    plain="$work/plain"
    build "$plain" "-g -O1" ""
    echo "== valgrind memcheck: the core's tests"
    # CPython itself makes memcheck reports valgrind cannot tell from bugs (its random seeding,
    # its allocator at exit): only errors with a frame in lockprof's extensions count. Tests
    # that compare waits with their ground truth can fail under valgrind's slowdown, and only
    # the tests' memory errors matter here, so a failed test is shown but does not fail the run.
    (cd "$plain" && PYTHONMALLOC=malloc valgrind --quiet --xml=yes --xml-file="$work/memcheck.%p.xml" \
        --errors-for-leak-kinds=none \
        "$work/venv/bin/python" -m pytest tests/test_core.py tests/test_contention.py \
        tests/test_parity.py -q -p no:cacheprovider) || echo "(tests failed under valgrind: see above)"
    "$work/venv/bin/python" - "$work"/memcheck.*.xml <<'PY'
import sys
import xml.etree.ElementTree as ElementTree

errors = []
for path in sys.argv[1:]:  # one per process: the tests fork
    with open(path) as f:
        text = f.read()
    if "</valgrindoutput>" not in text:  # a forked child that ended with os._exit()
        text += "</valgrindoutput>"
    # Leaks are not errors here: the interpreter does not free everything at exit.
    errors += [e for e in ElementTree.fromstring(text).findall("error")
               if not (e.findtext("kind") or "").startswith("Leak_")]
ours = [e for e in errors if any("/lockprof/_" in (o.text or "") for o in e.iter("obj"))]
for error in ours:
    frames = [f"{f.findtext('fn')} ({f.findtext('file')}:{f.findtext('line')})" for f in error.iter("frame")]
    print(error.findtext("kind"), error.findtext("what") or "", *frames[:8], sep="\n    ")
print(f"{len(ours)} memcheck errors in lockprof's code, {len(errors) - len(ours)} in CPython's own")
sys.exit(1 if ours else 0)
PY
    echo "== no valgrind error in lockprof's code"
fi
