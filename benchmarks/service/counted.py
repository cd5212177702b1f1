"""The service's two applications as the servers run them, marking a window for callgrind
(request_instructions.py --server): os.getpgrp() is called when the BENCH_SERVICE_WINDOW_START-th
GET /work has been answered, and again at the BENCH_SERVICE_WINDOW_END-th; callgrind, told to
dump before getpgrp(), counts the instructions of every thread of the process in between.

gunicorn serves counted:wsgi, uvicorn counted:asgi. Each is made when the server looks it up,
at the application's import, so the profiler starts as early as it does for wsgi_app:app or
asgi_app:app. The count is an itertools.count, atomic under the GIL: a lock here would be
profiled with the rest.
"""

from __future__ import annotations

import itertools
import os
import sys
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

START = int(os.environ.get("BENCH_SERVICE_WINDOW_START", "0"))
END = int(os.environ.get("BENCH_SERVICE_WINDOW_END", "0"))
_answered = itertools.count(1)


def _answered_one() -> None:
    if next(_answered) in (START, END):
        os.getpgrp()  # callgrind: a window ends here


def _wsgi() -> Callable:
    import wsgi_app

    def wsgi(environ: dict, start_response: Callable) -> Any:
        body = wsgi_app.app(environ, start_response)
        if environ.get("PATH_INFO") == "/work":
            _answered_one()
        return body

    return wsgi


def _asgi() -> Callable:
    import asgi_app

    async def asgi(scope: dict, receive: Callable, send: Callable) -> None:
        await asgi_app.app(scope, receive, send)
        if scope["type"] == "http" and scope["path"] == "/work":
            _answered_one()

    return asgi


def __getattr__(name: str) -> Callable:
    """counted.wsgi, counted.asgi: only the application asked for is imported."""
    if name == "wsgi":
        return _wsgi()
    if name == "asgi":
        return _asgi()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
