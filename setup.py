"""Extension modules for setuptools; all other metadata lives in pyproject.toml."""

from glob import glob

from Cython.Build import cythonize
from setuptools import Extension, setup

CORE_MODULES = ("_sampler", "_recorder", "_lock", "_primitives")
# Every header, declaration and include file: editing any of them rebuilds the modules.
DEPENDS = sorted(glob("lockprof/*.h") + glob("lockprof/*.pxd") + glob("lockprof/*.pxi"))

extensions = [
    Extension(f"lockprof.{name}", [f"lockprof/{name}.pyx"], depends=DEPENDS)
    for name in CORE_MODULES
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": "3", "embedsignature": True},
    ),
)
