"""Extension modules and lockprof's start-up hook for setuptools; all other metadata lives in
pyproject.toml."""

import os
import shutil
import sys
from glob import glob

CORE_MODULES = ("_sampler", "_recorder", "_lock", "_primitives")
# Runs at interpreter start-up from site-packages: it imports lockprof only when
# LOCKPROF_DDTRACE is set (lockprof/integrations/ddtrace.py, docs/ddtrace.md).
STARTUP_HOOK = "lockprof-ddtrace.pth"
# Every header, declaration and include file: editing any of them rebuilds the modules.
DEPENDS = sorted(glob("lockprof/*.h") + glob("lockprof/*.pxd") + glob("lockprof/*.pxi"))

# Which core the modules are built as (docs/design.md, "Two cores"): "internals" reads CPython's
# own structures (lockprof/_internals.h), "portable" uses its public C API only. "auto" takes
# the internals core on the series CI runs it on, and the portable one on any other CPython.
CORE_VARIABLE = "LOCKPROF_CORE"
CORE_MODES = ("auto", "internals", "portable")
INTERNALS_SERIES = ((3, 9), (3, 13))


def core_mode(environ=os.environ, version=sys.version_info):
    """The core to build, from LOCKPROF_CORE: "internals" or "portable"; SystemExit naming the
    variable for a value it cannot take."""
    value = environ.get(CORE_VARIABLE, "auto").strip().lower() or "auto"
    if value not in CORE_MODES:
        raise SystemExit(f"{CORE_VARIABLE} must be one of {', '.join(CORE_MODES)}, got {value!r}")
    supported = INTERNALS_SERIES[0] <= tuple(version[:2]) <= INTERNALS_SERIES[1]
    if value == "auto":
        return "internals" if supported else "portable"
    if value == "internals" and not supported:
        raise SystemExit(
            f"{CORE_VARIABLE}=internals needs CPython 3.9 to 3.13 (this is {version[0]}.{version[1]}): "
            f"its structures are read as those versions lay them out; use {CORE_VARIABLE}=portable")
    return value


def extensions(mode):
    from setuptools import Extension

    macros = [("LOCKPROF_CORE_PORTABLE", "1")] if mode == "portable" else []
    return [
        Extension(f"lockprof.{name}", [f"lockprof/{name}.pyx"], depends=DEPENDS, define_macros=macros)
        for name in CORE_MODULES
    ]


if __name__ == "__main__":  # as setuptools runs it; tests import core_mode() alone
    from Cython.Build import cythonize
    from setuptools import setup
    from setuptools.command.build_py import build_py

    class BuildWithStartupHook(build_py):
        """build_py, plus the start-up hook at the top of the wheel (site-packages itself, where
        the site module reads .pth files). Editable installs do not get it."""

        def run(self):
            super().run()
            shutil.copyfile(STARTUP_HOOK, os.path.join(self.build_lib, STARTUP_HOOK))

        def get_outputs(self, include_bytecode=True):
            return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, STARTUP_HOOK)]

    setup(
        ext_modules=cythonize(
            extensions(core_mode()),
            # freethreading_compatible: the modules declare (Py_mod_gil) that they run without the
            # GIL, so importing them leaves a free-threaded interpreter free-threaded (_sync.h).
            compiler_directives={"language_level": "3", "embedsignature": True,
                                 "freethreading_compatible": True},
        ),
        cmdclass={"build_py": BuildWithStartupHook},
    )
