"""Extension modules for setuptools; all other metadata lives in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

CORE_MODULES = ("_sampler", "_recorder", "_lock", "_primitives")

extensions = [
    Extension(f"lockprof.{name}", [f"lockprof/{name}.pyx"], depends=["lockprof/_lockcore.h"])
    for name in CORE_MODULES
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": "3", "embedsignature": True},
    ),
)
