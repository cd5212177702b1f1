"""python -m lockprof: the same as the `lockprof` command."""

from lockprof.cli import main

raise SystemExit(main())
