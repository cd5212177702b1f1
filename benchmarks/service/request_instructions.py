#!/usr/bin/env python3
"""Instructions per request of the service benchmark's applications, counted by callgrind,
with profiling off and with lockprof at its defaults: what a request costs, without the noise
of wall-clock runs on a shared machine.

In process (the default), without server or network: wsgi calls wsgi_app.work(), the Flask
view, in the application's context (its jsonify needs one); asgi calls asgi_app.app() with an
HTTP scope for /work, after its lifespan startup. workload.py starts the profiler
(BENCH_SERVICE_PROFILER) exactly as in a server; upload_interval is an hour
(DD_PROFILING_UPLOAD_INTERVAL) so no export falls inside the count. Per application and
profiler, one process under `valgrind --tool=callgrind` (instructions.py's windows(): counts
between os.getppid() calls, of every thread, start-up excluded):

* --warm-up requests not counted (the pool's threads started, first captures and namings done),
  then gc.collect() and gc.freeze() as instructions.py does;
* window 1: the pool settles (the main thread sleeps SETTLE seconds: its workers finish and
  block on their queue), no request; window 2: --requests requests, then the same settle;
* instructions per request = (window 2 - window 1) / requests, so the pool workers' share of
  every request is counted and the settle cancels out.

--server: run.py's server command (gunicorn's gthread worker or uvicorn) runs under callgrind,
serving counted.py's wrapper of the application, loaded over loopback by --connections
keep-alive clients, each pausing --delay-ms between requests; counted.py marks the answers of
request --warm-up and --warm-up + --requests, and the instructions of the serving process in
between (every thread, the server's own work included), divided by --requests, are the count.
It measures the interpreter that runs it.

    python benchmarks/service/request_instructions.py [--python PATH] [--apps wsgi,asgi] [--requests 300]
        [--warm-up 100] [--cache-sim] [--keep DIR] [--server [--connections 16] [--threads 8] [--delay-ms 1000]]

--cache-sim also simulates the caches and reports, per request, the first-level instruction and
data cache misses (I1mr, D1mr, D1mw): lockprof's cost in a served request that its instructions
do not show (docs/overhead.md, "The service"). --keep writes the callgrind files to DIR, for
callgrind_annotate DIR/callgrind.<app>-<profiler>.3 (in process) or
DIR/callgrind.server-<app>-<profiler>.<pid>.2. Needs valgrind and benchmarks/requirements.txt's
flask (wsgi), gunicorn and uvicorn (--server).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import itertools
import os
import shutil
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from instructions import callgrind, describe, dumped, no_valgrind, windows  # noqa: E402  (benchmarks/instructions.py)

APPS = ("wsgi", "asgi")
PROFILERS = ("none", "lockprof")
SETTLE = 0.5  # seconds the main thread sleeps for the pool's threads to go idle (under callgrind)
NO_EXPORT = {"DD_PROFILING_UPLOAD_INTERVAL": "3600"}  # an hour: no export inside a count
CACHE_EVENTS = ("I1mr", "D1mr", "D1mw")  # --cache-sim: first-level misses, instruction and data


def settle() -> None:
    time.sleep(SETTLE)
    os.getppid()  # callgrind: the window ends here


class Server:
    """Serves one application's GET /work in this process."""

    def __init__(self, app: str) -> None:
        sys.path.insert(0, HERE)
        if app == "wsgi":
            import wsgi_app

            self._wsgi = wsgi_app
        else:
            import asgi_app

            self._asgi = asgi_app
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._shutdown = self._loop.create_future()
            self._lifespan = self._loop.create_task(asgi_app.app({"type": "lifespan"}, self._lifespan_receive,
                                                                 self._discard))
            self._loop.run_until_complete(self._started())
        self.app = app

    async def _lifespan_receive(self) -> Dict[str, Any]:
        if self._asgi.Shared.backend_slots is None:
            return {"type": "lifespan.startup"}
        return await self._shutdown

    async def _started(self) -> None:
        while self._asgi.Shared.backend_slots is None:
            await asyncio.sleep(0)

    async def _discard(self, message: Dict[str, Any]) -> None:
        pass

    async def _no_body(self) -> Dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def _serve_asgi(self, requests: int) -> None:
        scope = {"type": "http", "method": "GET", "path": "/work"}
        for _ in range(requests):
            await self._asgi.app(scope, self._no_body, self._discard)

    def serve(self, requests: int) -> None:
        if self.app == "wsgi":
            with self._wsgi.app.app_context():
                for _ in range(requests):
                    self._wsgi.work()
        else:
            self._loop.run_until_complete(self._serve_asgi(requests))

    def close(self) -> None:
        if self.app == "asgi":
            self._shutdown.set_result({"type": "lifespan.shutdown"})
            self._loop.run_until_complete(self._lifespan)
        else:
            self._wsgi.pool.shutdown()
            self._wsgi.workload.stop_profiler()


def child(app: str, requests: int, warm_up: int) -> None:
    """The measured program (run under callgrind)."""
    server = Server(app)
    server.serve(warm_up)
    gc.collect()
    gc.freeze()
    settle()  # the end of start-up and warm-up (callgrind's first dump)
    settle()  # window 1
    server.serve(requests)
    settle()
    server.close()


def count(python: str, app: str, profiler: str, args: argparse.Namespace, work: str) -> Dict[str, float]:
    """Per request, by callgrind event: Ir (instructions), and with --cache-sim CACHE_EVENTS."""
    env = dict(os.environ, BENCH_SERVICE_PROFILER=profiler, BENCH_SERVICE_PROFILE_DIR=os.path.join(work, "profiles"),
               **NO_EXPORT)
    program = (f"import sys; sys.path.insert(0, {HERE!r}); import request_instructions; "
               f"request_instructions.child({app!r}, {args.requests}, {args.warm_up})")
    idle, served = windows(python, program, 2, f"{app}-{profiler}", work, env, cache=args.cache_sim)
    return {event: (served[event] - idle[event]) / args.requests for event in served}


SERVER_MARKER = "getpgrp"  # counted.py's; gunicorn's worker calls os.getppid() in its loop


def count_served(app: str, profiler: str, args: argparse.Namespace, work: str) -> Dict[str, float]:
    """Instructions per request of the process serving app (gunicorn's worker, or uvicorn) under
    run.py's server command, loaded by --connections clients: the window from the --warm-up-th
    answer to the (--warm-up + --requests)-th, counted.py marking both."""
    import run  # benchmarks/service/run.py (not in the measured child: it imports more than a server does)

    tag = f"server-{app}-{profiler}"
    out = os.path.join(work, f"callgrind.{tag}.%p")
    end = args.warm_up + args.requests
    env = {"BENCH_SERVICE_WINDOW_START": str(args.warm_up), "BENCH_SERVICE_WINDOW_END": str(end),
           "PYTHONHASHSEED": "0", **NO_EXPORT}
    server = run.Server(app, profiler, os.path.join(work, "profiles"), args.threads, os.path.join(work, f"{tag}.log"),
                        None, prefix=callgrind(out, SERVER_MARKER, cache=args.cache_sim), target=f"counted:{app}",
                        env=env)
    try:
        pid = server.wait_ready(timeout=600)["pid"]
        # Past the window's end by one request a connection, so that it ends under the same load.
        load(server.port, end + args.connections, args.connections, args.delay_ms / 1e3)
    finally:
        server.stop(timeout=600)
    (window,) = dumped(out.replace("%p", str(pid)), 1, SERVER_MARKER)
    return {event: value / args.requests for event, value in window.items()}


def load(port: int, total: int, connections: int, delay: float) -> None:
    """total GET /work over `connections` keep-alive connections, each waiting `delay` seconds
    between its requests (as run.py's wrk script does)."""
    sent = itertools.count()
    failures: List[str] = []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        try:
            while next(sent) < total:
                connection.request("GET", "/work")
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    failures.append(f"status {response.status}")
                time.sleep(delay)
        except OSError as error:
            failures.append(repr(error))
        finally:
            connection.close()

    clients = [threading.Thread(target=client) for _ in range(connections)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, the first: {failures[0]}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="the interpreter measured (default: this one)")
    parser.add_argument("--apps", default=",".join(APPS), help="comma-separated: wsgi, asgi (default both)")
    parser.add_argument("--requests", type=int, default=300, help="requests counted per run (default 300)")
    parser.add_argument("--warm-up", type=int, default=100, help="requests before the count (default 100)")
    parser.add_argument("--cache-sim", action="store_true",
                        help="simulate the caches: also report first-level cache misses per request")
    parser.add_argument("--keep", metavar="DIR", help="keep the callgrind files in DIR")
    parser.add_argument("--server", action="store_true",
                        help="serve the applications with run.py's servers (gunicorn, uvicorn) over loopback "
                             "instead of in process; measures this interpreter")
    parser.add_argument("--connections", type=int, default=16, help="--server: client connections (default 16)")
    parser.add_argument("--threads", type=int, default=8, help="--server: gunicorn request threads (default 8)")
    parser.add_argument("--delay-ms", type=float, default=1000.0,
                        help="--server: each connection's pause between requests (default 1000: run.py's 20 ms "
                             "scaled by callgrind's slowdown, so the server is about as busy)")
    args = parser.parse_args(argv)
    args.apps = [name.strip() for name in args.apps.split(",") if name.strip()]
    if not args.apps or any(name not in APPS for name in args.apps):
        parser.error(f"--apps: a comma-separated list from {', '.join(APPS)}")
    if args.requests <= 0 or args.warm_up < 0:
        parser.error("--requests must be positive and --warm-up not negative")
    if args.server and (args.warm_up < 1 or min(args.connections, args.threads) < 1 or args.delay_ms < 0):
        parser.error("--server needs --warm-up, --connections and --threads of at least 1")
    if shutil.which(args.python) is None:
        parser.error(f"--python {args.python!r} is not an executable")
    if args.server and os.path.realpath(shutil.which(args.python)) != os.path.realpath(sys.executable):
        parser.error("--server measures the interpreter that runs it: run it with the --python one")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if no_valgrind("service/request_instructions.py"):
        return 1
    with tempfile.TemporaryDirectory(prefix="lockprof-service-instructions-") as scratch:
        work = args.keep or scratch
        os.makedirs(work, exist_ok=True)
        interpreter = describe(args.python, work)
        results: Dict[str, List[Dict[str, float]]] = {}
        for app in args.apps:
            results[app] = [count_served(app, profiler, args, work) if args.server
                            else count(args.python, app, profiler, args, work)
                            for profiler in PROFILERS]
    where = (f"served by gunicorn/uvicorn, {args.connections} connections, {args.delay_ms:g} ms apart"
             if args.server else "in process")
    print(f"per request (callgrind, all threads), {args.requests} requests after {args.warm_up}, "
          f"{where}: {interpreter}")
    print(f"  {'app':<5} {'event':<19} {'none':>11} {'lockprof':>11} {'ratio':>7}")
    for app, (none, ours) in results.items():
        for event in ("Ir",) + (CACHE_EVENTS if args.cache_sim else ()):
            label = "instructions" if event == "Ir" else f"{event} (L1 misses)"
            print(f"  {app:<5} {label:<19} {none[event]:>11,.0f} {ours[event]:>11,.0f} {ours[event] / none[event]:>6.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
