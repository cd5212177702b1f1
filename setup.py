"""Extension modules and lockprof's start-up hook for setuptools; all other metadata lives in
pyproject.toml."""

import os
import shutil
from glob import glob

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py

CORE_MODULES = ("_sampler", "_recorder", "_lock", "_primitives")
# Runs at interpreter start-up from site-packages: it imports lockprof only when
# LOCKPROF_DDTRACE is set (lockprof/integrations/ddtrace.py, docs/ddtrace.md).
STARTUP_HOOK = "lockprof-ddtrace.pth"
# Every header, declaration and include file: editing any of them rebuilds the modules.
DEPENDS = sorted(glob("lockprof/*.h") + glob("lockprof/*.pxd") + glob("lockprof/*.pxi"))

extensions = [
    Extension(f"lockprof.{name}", [f"lockprof/{name}.pyx"], depends=DEPENDS)
    for name in CORE_MODULES
]


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
        extensions,
        # freethreading_compatible: the modules declare (Py_mod_gil) that they run without the
        # GIL, so importing them leaves a free-threaded interpreter free-threaded (_sync.h).
        compiler_directives={"language_level": "3", "embedsignature": True, "freethreading_compatible": True},
    ),
    cmdclass={"build_py": BuildWithStartupHook},
)
