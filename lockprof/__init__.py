from lockprof._version import __version__
