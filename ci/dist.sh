#!/usr/bin/env bash
# Build the wheel and the sdist with PYTHON, then test each as a user gets it:
#   - the wheel in a fresh environment with no Cython and no compiler reachable;
#   - the sdist in another fresh environment, which compiles it.
# The tests run against the installed package, never the source tree.
# Usage: ci/dist.sh PYTHON [DIST_DIR]      (used by .ci/run and by ci/workflows/wheels.yml)
set -euo pipefail
python=${1:?usage: ci/dist.sh PYTHON [DIST_DIR]}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dist=${2:-$work/dist}

venv_bin() { if [ -d "$1/bin" ]; then echo "$1/bin"; else echo "$1/Scripts"; fi; }

"$python" -m venv "$work/build-env"
build_bin=$(venv_bin "$work/build-env")
"$build_bin/python" -m pip install -q --upgrade pip build
"$build_bin/python" -m build --outdir "$dist" "$root"
wheel=$(ls "$dist"/lockprof-*.whl)
sdist=$(ls "$dist"/lockprof-*.tar.gz)
"$build_bin/python" "$root/ci/check_dist.py" "$wheel" "$sdist"
if [ "$(uname -s)" = Linux ]; then  # the wheel's binary must be manylinux-compatible
    "$build_bin/python" -m pip install -q auditwheel
    "$build_bin/auditwheel" show "$wheel" | tee "$work/auditwheel.txt"
    tr -s '\n ' '  ' < "$work/auditwheel.txt" | grep -q 'consistent with the following platform tag: "manylinux' 
fi

# The wheel: test dependencies from the index first, then lockprof itself with builds forbidden,
# while no compiler can be found (a wheel that needed one would fail here).
"$python" -m venv "$work/wheel-env"
wheel_bin=$(venv_bin "$work/wheel-env")
"$wheel_bin/python" -m pip install -q --upgrade pip
"$wheel_bin/python" -m pip install -q --only-binary=:all: pytest pytest-benchmark
nocc="$work/no-compiler"
mkdir -p "$nocc"
for tool in cc gcc clang c++ g++; do printf '#!/bin/sh\necho "no compiler here" >&2\nexit 1\n' > "$nocc/$tool"; chmod +x "$nocc/$tool"; done
PATH="$nocc:$PATH" CC=false CXX=false "$wheel_bin/python" -m pip install -q --no-deps --only-binary=:all: "$wheel"
if "$wheel_bin/python" -c "import Cython" 2>/dev/null; then echo "Cython must not be in the wheel environment"; exit 1; fi
# The slow robustness runs (CPython's suites, the soak) ran per Python in ci/test.sh already.
# The wheel is tested with pytest alone: the optional test dependencies (ddtrace among them) are
# in the sdist's test below, so their tests may skip here.
(cd "$work" && PATH="$nocc:$PATH" LOCKPROF_REQUIRE_DDTRACE=0 "$wheel_bin/python" -m pytest "$root/tests" -q -p no:cacheprovider -m "not slow")
"$wheel_bin/lockprof" --version

# The sdist: a plain pip install, which compiles the core from the shipped .pyx/.pxd/.h.
"$python" -m venv "$work/sdist-env"
sdist_bin=$(venv_bin "$work/sdist-env")
"$sdist_bin/python" -m pip install -q --upgrade pip
"$sdist_bin/python" -m pip install -q "$sdist[test]"
(cd "$work" && "$sdist_bin/python" -m pytest "$root/tests" -q -p no:cacheprovider -m "not slow")
