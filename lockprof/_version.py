"""The single place lockprof's version is defined (read by pyproject.toml too)."""

__version__ = "0.1.0"
