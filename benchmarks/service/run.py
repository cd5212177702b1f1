#!/usr/bin/env python3
"""The service benchmark: two applications doing what services do per request (workload.py), a
threaded one (wsgi_app.py, Flask on gunicorn's threaded worker) and an asyncio one (asgi_app.py,
on uvicorn), each loaded by wrk on loopback, with profiling off, with lockprof at its defaults
and with ddtrace's lock collectors.

    python run.py RESULTS_DIR [--apps wsgi,asgi] [--duration 20] [--rounds 5] [--connections 16] [--delay-ms 20]
        [--interleave]

For each application, each round serves it once per profiler (the order rotated from round to
round): start the server on 127.0.0.1 (one process: gunicorn's one worker with --threads
request threads, or uvicorn), check through /info that it runs the intended profiler, warm up,
then one wrk run of --duration seconds; the server runs on one CPU and wrk on another
(--server-cpu), so neither takes the other's core from one run to the next. Every wrk
connection waits --delay-ms between its requests (a wrk Lua delay()), so the service runs below
saturation, as a production service does: the same request rate with and without profiling, so
the server's CPU time shows what profiling costs, and latency is not dominated by queueing.
Reported per application and profiler, medians over the rounds with their range: p50 and p99
latency (wrk's), requests per second, CPU per request (the server process's utime + stime over
the wrk run, from /proc, divided by the requests served); the range of the unprofiled rounds is
the benchmark's noise; --nice -10 (root) keeps the machine's other work from queueing the
server's requests, on a shared machine. Needs Linux (/proc), wrk (Debian: apt-get install wrk) and
benchmarks/requirements.txt; traffic only goes to 127.0.0.1, every run is bounded in time.

--interleave starts every profiler's server once, all on the server CPU (each idle while another
is loaded), and each round loads each in turn for --duration seconds: on a shared machine whose
speed swings over minutes, short interleaved rounds (--duration 4 --rounds 30) measure a few
percent that fresh servers a round apart cannot. The targets are judged on the median of the
rounds' changes against profiling off in the same round, in either mode.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any, Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import profilers  # noqa: E402  (benchmarks/profilers.py)
from benchutil import check_cpu, cpu_model, last_cpu, load_average, pinned_to, rotated, write_json  # noqa: E402

# What lockprof may cost against profiling off, in percent (the targets of issue 22).
TARGETS = {"cpu_us_per_request": 2.0, "p50_ms": 2.0, "p99_ms": 3.0}
# The seeds' production benchmark, for the pure-Python collector (quoted, not measured here).
SEEDS = {"p50": "+11-12%", "p99": "+37-40%", "cpu": "+160%"}
# What /info must report as the type of the application's Lock under each profiler.
LOCK_TYPES = {"none": ("lock",), "lockprof": ("ProfiledLock",),
              "ddtrace": ("_ProfiledThreadingLock",), "ddtrace-lockprof": ("ProfiledLock",)}
APPS = ("wsgi", "asgi")
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 2.0) -> Dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # 127.0.0.1 only
        return json.load(response)


def worker_cpu_seconds(pid: int) -> float:
    """CPU time of a process so far: the scheduler's own count (ns) of each of its threads'
    time on a CPU (/proc/<pid>/task/*/schedstat), else, where the kernel has no schedstat,
    utime + stime from /proc/<pid>/stat, which the clock tick samples (10 ms at 100 Hz: over a
    4-s round, steps of about 0.5% of the server's CPU). A thread that exits between two reads
    takes its time along: the servers' threads live as long as they do."""
    total_ns, found = 0, False
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as f:
                total_ns += int(f.read().split()[0])
            found = True
        except (OSError, ValueError, IndexError):
            pass  # exited meanwhile, or no schedstat
    if found:
        return total_ns / 1e9
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # fields 14 and 15 of stat(5)


def parse_wrk(output: str) -> Dict[str, float]:
    """p50/p99 latency (ms), requests/sec, requests and errors from `wrk --latency` output."""

    def latency(percent: str) -> float:
        match = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
        if not match:
            raise ValueError(f"wrk output has no {percent}% latency:\n{output}")
        return float(match.group(1)) * UNITS[match.group(2)]

    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in", output, re.MULTILINE)
    if not rate or not total:
        raise ValueError(f"wrk output has no request rate:\n{output}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return {"p50_ms": latency("50"), "p99_ms": latency("99"), "requests_per_sec": float(rate.group(1)),
            "requests": int(total.group(1)), "errors": errors + (int(non_2xx.group(1)) if non_2xx else 0)}


def placed(cpu: int, nice: int):
    """A subprocess preexec_fn: the child on CPU `cpu` only (-1: anywhere) and at niceness `nice`
    (0: unchanged; below 0, root only: the scheduler runs it before the machine's other work, so
    that other jobs on a shared machine do not queue the server's requests). Where the kernel
    groups processes by session (autogroup), niceness only orders processes within a group, so
    the child starts a session of its own and gives its group the same niceness."""
    pin = pinned_to(cpu)

    def preexec() -> None:
        if pin is not None:
            pin()
        if nice:
            os.setsid()
            if os.path.exists("/proc/self/autogroup"):
                with open("/proc/self/autogroup", "w", encoding="ascii") as f:
                    f.write(str(nice))
            os.nice(nice)

    return preexec


def server_command(app: str, port: int, threads: int, target: Optional[str] = None) -> List[str]:
    """One server process serving `app` (or the application named target, module:name):
    gunicorn's one threaded worker (its master idles), or uvicorn on asyncio's own loop and its
    pure-Python HTTP parser (the same with or without uvloop and httptools installed)."""
    if app == "wsgi":
        return [sys.executable, "-m", "gunicorn", "--chdir", HERE, "--bind", f"127.0.0.1:{port}",
                "--workers", "1", "--worker-class", "gthread", "--threads", str(threads),
                "--backlog", "256", "--log-level", "warning", target or "wsgi_app:app"]
    return [sys.executable, "-m", "uvicorn", "--app-dir", HERE, "--host", "127.0.0.1", "--port", str(port),
            "--loop", "asyncio", "--http", "h11", "--lifespan", "on", "--backlog", "256",
            "--log-level", "warning", "--no-access-log", target or "asgi_app:app"]


class Server:
    """One application served under one profiler."""

    def __init__(self, app: str, profiler: str, profile_dir: str, threads: int, log_path: str, preexec,
                 prefix: Sequence[str] = (), target: Optional[str] = None,
                 env: Optional[Dict[str, str]] = None) -> None:
        """prefix: a command the server runs under (valgrind's); target: its application, as
        server_command takes it; env: more environment variables."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, BENCH_SERVICE_PROFILER=profiler, BENCH_SERVICE_PROFILE_DIR=profile_dir, **(env or {}))
        command = list(prefix) + server_command(app, self.port, threads, target)
        self.log = open(log_path, "w", encoding="utf-8")
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        preexec_fn=preexec)

    def wait_ready(self, timeout: float) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with status {self.process.returncode} (see {self.log.name})")
            try:
                return get_json(self.url + "/info")
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the service did not answer within {timeout:g} s (see {self.log.name})")

    def stop(self, timeout: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # graceful: the worker's atexit writes its profile
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def wrk(url: str, duration: int, connections: int, script: str, preexec) -> str:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script, url]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60,
                               preexec_fn=preexec)
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()}")
    return completed.stdout


def check_info(info: Dict[str, Any], app: str, profiler: str) -> None:
    """RuntimeError unless the server runs `profiler`, its locks of the matching types."""
    wrong = info["profiler"] != profiler or info["lock_type"] not in LOCK_TYPES[profiler]
    if app == "asgi" and info["asyncio_profiled"] != (profiler != "none"):
        wrong = True
    if wrong:
        raise RuntimeError(f"the server reports profiler {info['profiler']!r} with locks of type "
                           f"{info['lock_type']!r} (asyncio's profiled: {info['asyncio_profiled']}); "
                           f"expected {profiler!r} / {LOCK_TYPES[profiler]}")


def start(app: str, profiler: str, tag: str, args) -> Dict[str, Any]:
    """A server of app under profiler, answering, checked through /info."""
    profile_dir = os.path.join(args.results_dir, "profiles", tag)
    server = Server(app, profiler, profile_dir, args.threads, os.path.join(args.results_dir, f"server.{tag}.log"),
                    placed(args.server_cpu, args.nice))
    try:
        info = server.wait_ready(args.startup_timeout)
        check_info(info, app, profiler)
    except BaseException:
        server.stop()
        raise
    return {"app": app, "profiler": profiler, "server": server, "info": info, "profile_dir": profile_dir}


def measure(served: Dict[str, Any], seconds: int, args, script: str) -> Dict[str, Any]:
    """One wrk run of `seconds` against a started server: latency, rate and its CPU per request."""
    pid = served["info"]["pid"]
    load = load_average()
    cpu_before = worker_cpu_seconds(pid)
    output = wrk(served["server"].url + "/work", seconds, args.connections, script, placed(args.client_cpu, args.nice))
    cpu = worker_cpu_seconds(pid) - cpu_before
    result = parse_wrk(output)
    result.update({"cpu_s": cpu, "cpu_us_per_request": cpu / max(1, result["requests"]) * 1e6, "worker_pid": pid,
                   "lock_type": served["info"]["lock_type"], "load_average": load, "wrk": output})
    return result


def finish(served: Dict[str, Any]) -> List[str]:
    """Stop a started server; the profile files it wrote at exit (none unprofiled)."""
    server, profiler, pid = served["server"], served["profiler"], served["info"]["pid"]
    server.stop()
    if server.process.returncode not in (0, -signal.SIGTERM):  # uvicorn ends by the SIGTERM it was sent
        raise RuntimeError(f"the {served['app']} server under {profiler} exited with status "
                           f"{server.process.returncode} (see {server.log.name})")
    if profiler == "none":
        return []
    files = sorted(glob.glob(os.path.join(served["profile_dir"], f"*.{pid}.*.pprof")))
    if not files:
        raise RuntimeError(f"{profiler} wrote no profile in {served['profile_dir']}")
    return files


def run_one(app: str, profiler: str, round_: int, args, script: str) -> Dict[str, Any]:
    """A round of one profiler: its own server, warmed up, measured for --duration, stopped."""
    served = start(app, profiler, f"{app}.{profiler}.{round_}", args)
    try:
        wrk(served["server"].url + "/work", args.warmup, args.connections, script, placed(args.client_cpu, args.nice))
        result = measure(served, args.duration, args, script)
    finally:
        files = finish(served)
    if files:
        result["profile_files"] = files
    return result


def run_interleaved(app: str, args, script: str) -> Dict[str, List[Dict[str, Any]]]:
    """--interleave: one server per profiler, all running at once (on the server CPU, idle while
    another is loaded); each round loads each of them for --duration seconds, in rotated order,
    so that the machine's slow swings fall on all profilers alike."""
    runs: Dict[str, List[Dict[str, Any]]] = {p: [] for p in args.profilers}
    started: List[Dict[str, Any]] = []
    try:
        for profiler in args.profilers:
            started.append(start(app, profiler, f"{app}.{profiler}", args))
        for served in started:
            wrk(served["server"].url + "/work", args.warmup, args.connections, script,
                placed(args.client_cpu, args.nice))
        by_profiler = {served["profiler"]: served for served in started}
        for round_ in range(args.rounds):
            for profiler in rotated(args.profilers, round_):
                result = measure(by_profiler[profiler], args.duration, args, script)
                runs[profiler].append(result)
                progress(app, round_, profiler, result)
    finally:
        files = {served["profiler"]: finish(served) for served in started}
    for profiler, results in runs.items():
        for result in results:
            if files.get(profiler):
                result["profile_files"] = files[profiler]
    return runs


def progress(app: str, round_: int, profiler: str, result: Dict[str, Any]) -> None:
    print(f"  {app} round {round_} {profiler:<9} CPU {result['cpu_us_per_request']:,.0f} us/request  "
          f"p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms  "
          f"{result['requests_per_sec']:,.0f} req/s  errors {result['errors']}  "
          f"load {result['load_average']}", flush=True)


METRICS = ("p50_ms", "p99_ms", "requests_per_sec", "cpu_us_per_request", "errors")


def summarize(runs: Dict[str, List[Dict[str, Any]]]) -> Dict[str, Dict[str, Any]]:
    """Per profiler: each metric's median over the rounds, its range, the median's change against
    profiling off, and the paired change: the median over the rounds of each round's change
    against profiling off in the same round (what the targets are judged on: a round's profilers
    run minutes apart at most, so the machine's slow swings largely cancel)."""
    summary = {}
    for profiler, results in runs.items():
        entry: Dict[str, Any] = {metric: statistics.median(r[metric] for r in results) for metric in METRICS}
        entry["range"] = {metric: (min(r[metric] for r in results), max(r[metric] for r in results))
                          for metric in METRICS}
        summary[profiler] = entry
    base = summary.get("none")
    for profiler, entry in summary.items():
        if base and profiler != "none":
            entry["change_pct"] = {metric: (entry[metric] / base[metric] - 1.0) * 100.0
                                   for metric in METRICS if metric != "errors" and base[metric]}
            changes = {metric: sorted((ours[metric] / off[metric] - 1.0) * 100.0
                                      for ours, off in zip(runs[profiler], runs["none"]) if off[metric])
                       for metric in TARGETS}
            entry["paired_change_pct"] = {metric: statistics.median(c) for metric, c in changes.items()}
            entry["paired_interval_pct"] = {metric: median_interval(c) for metric, c in changes.items()}
    return summary


def median_interval(values: List[float], confidence: float = 0.95) -> Optional[Tuple[float, float]]:
    """A distribution-free interval for the median of what the sorted values are drawn from: the
    k-th smallest and k-th largest value, k the largest with P(Binomial(n, 1/2) < k) at most
    (1 - confidence) / 2 (the sign test's interval; n >= 6 for 95%). None for too few values."""
    n = len(values)
    tail, k, below = (1.0 - confidence) / 2.0, 0, 0.0
    while k < n:
        below += math.comb(n, k) / 2.0 ** n  # P(Binomial(n, 1/2) <= k)
        if below > tail:
            break
        k += 1
    return (values[k - 1], values[n - k]) if k >= 1 else None


def noise_pct(entry: Dict[str, Any], metric: str) -> float:
    """The range of the rounds of one profiler, in percent of their median."""
    low, high = entry["range"][metric]
    return (high - low) / entry[metric] * 100.0 if entry[metric] else 0.0


def report(summaries: Dict[str, Dict[str, Dict[str, Any]]], meta: Dict[str, Any]) -> List[str]:
    lines = [f"service benchmark: Python {meta['python']}, {meta['cpu']} ({meta['cpus']} CPUs), {meta['date']}; "
             f"server on CPU {meta['server_cpu']} (gunicorn gthread 1 worker x {meta['threads']} threads; "
             f"uvicorn), wrk on CPU {meta['client_cpu']}, {meta['connections']} connections, "
             f"{meta['delay_ms']:g} ms between requests, nice {meta['nice']}, "
             f"{meta['duration']:g} s x {meta['rounds']} rounds"
             f"{', servers interleaved' if meta.get('interleave') else ''}; "
             "medians (their change) [range over the rounds]"]
    for app, summary in summaries.items():
        lines += ["", f"{app} ({'Flask on gunicorn' if app == 'wsgi' else 'ASGI on uvicorn'})", "",
                  "| profiler | CPU us/request | p50 ms | p99 ms | requests/s | errors |", "|---|---|---|---|---|---|"]
        for profiler, entry in summary.items():
            change = entry.get("change_pct", {})

            def cell(metric: str, fmt: str) -> str:
                low, high = entry["range"][metric]
                shown = format(entry[metric], fmt)
                if metric in change:
                    shown += f" ({change[metric]:+.1f}%)"
                return f"{shown} [{low:{fmt}}-{high:{fmt}}]"

            lines.append(f"| {profiler} | {cell('cpu_us_per_request', ',.0f')} | {cell('p50_ms', '.2f')} | "
                         f"{cell('p99_ms', '.2f')} | {entry['requests_per_sec']:,.0f} | "
                         f"{entry['range']['errors'][1]:.0f} |")
        if "none" in summary:
            lines.append("\nnoise: the unprofiled rounds range over " + ", ".join(
                f"{noise_pct(summary['none'], metric):.1f}% ({what})"
                for metric, what in (("cpu_us_per_request", "CPU/request"), ("p50_ms", "p50"), ("p99_ms", "p99")))
                + " of their median")
        lockprof = summary.get("lockprof", {}).get("paired_change_pct")
        if lockprof:
            for metric, what in (("cpu_us_per_request", "CPU per request"), ("p50_ms", "p50 latency"),
                                 ("p99_ms", "p99 latency")):
                verdict = "PASS" if lockprof[metric] <= TARGETS[metric] else "MISS"
                interval = summary["lockprof"]["paired_interval_pct"][metric]
                shown = f" [95%: {interval[0]:+.1f}% to {interval[1]:+.1f}%]" if interval else ""
                lines.append(f"{verdict}  {app}: lockprof {what} within {TARGETS[metric]:g}% of profiling off: "
                             f"{lockprof[metric]:+.1f}%{shown} (median of the rounds' changes)")
    lines.append(f"\nthe seeds' pure-Python collector (quoted): p50 {SEEDS['p50']}, p99 {SEEDS['p99']}, "
                 f"CPU {SEEDS['cpu']}")
    return lines


def parse_args(argv: Optional[List[str]] = None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results_dir", metavar="RESULTS_DIR")
    parser.add_argument("--apps", default=",".join(APPS), help="comma-separated, from wsgi, asgi (default both)")
    parser.add_argument("--duration", type=int, default=20, help="seconds of each measured wrk run (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of wrk before measuring (default 3)")
    parser.add_argument("--rounds", type=int, default=5, help="runs per application and profiler (default 5)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--delay-ms", type=float, default=20.0,
                        help="pause of each connection between requests, 0 to saturate (default 20)")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn request threads (default 8)")
    parser.add_argument("--startup-timeout", type=float, default=30.0)
    parser.add_argument("--server-cpu", type=int, default=last_cpu(),
                        help="run the server on this one CPU, wrk on another (default the last CPU; -1: not pinned)")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of the server and wrk, e.g. -10 (root) on a shared machine (default 0)")
    parser.add_argument("--interleave", action="store_true",
                        help="run every profiler's server at once, each round loading each in turn "
                             "(default: a fresh server per round and profiler)")
    parser.add_argument("--profilers", default=None,
                        help="comma-separated, from none, lockprof, ddtrace, ddtrace-lockprof "
                             "(default: all that are installed)")
    args = parser.parse_args(argv)
    if min(args.duration, args.warmup, args.startup_timeout) <= 0 or min(args.rounds, args.connections, args.threads) < 1:
        parser.error("--duration, --warmup, --startup-timeout, --rounds, --connections and --threads must be positive")
    if args.delay_ms < 0:
        parser.error("--delay-ms must be >= 0")
    args.apps = [app.strip() for app in args.apps.split(",") if app.strip()]
    if not args.apps or any(app not in APPS for app in args.apps):
        parser.error(f"--apps: a comma-separated list from {', '.join(APPS)}")
    try:
        args.profilers = profilers.choose(args.profilers)
        check_cpu(args.server_cpu)
    except ValueError as error:
        parser.error(str(error))
    others = sorted(os.sched_getaffinity(0) - {args.server_cpu}) if args.server_cpu >= 0 else []
    args.client_cpu = others[0] if others else -1  # wrk on another CPU than the server, when there is one
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (Debian: apt-get install wrk)")
    if not sys.platform.startswith("linux"):
        parser.error("the service benchmark reads CPU times from /proc: Linux only")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    os.makedirs(args.results_dir, exist_ok=True)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "python": sys.version.split()[0], "cpu": cpu_model(), "cpus": os.cpu_count(),
            "platform": platform.platform(), "ddtrace": profilers.ddtrace_version(), "profilers": args.profilers,
            "apps": args.apps, "duration": args.duration, "warmup": args.warmup, "rounds": args.rounds,
            "connections": args.connections, "delay_ms": args.delay_ms, "threads": args.threads,
            "server_cpu": args.server_cpu, "client_cpu": args.client_cpu, "nice": args.nice,
            "interleave": args.interleave}
    runs: Dict[str, Dict[str, List[Dict[str, Any]]]] = {app: {p: [] for p in args.profilers} for app in args.apps}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f"function delay()\n  return {args.delay_ms:g}\nend\n")  # ms between requests
    try:
        for app in args.apps:
            if args.interleave:
                runs[app] = run_interleaved(app, args, script.name)
                continue
            for round_ in range(args.rounds):
                for profiler in rotated(args.profilers, round_):
                    result = run_one(app, profiler, round_, args, script.name)
                    runs[app][profiler].append(result)
                    progress(app, round_, profiler, result)
    except (RuntimeError, ValueError, OSError, subprocess.TimeoutExpired) as error:
        print(f"run.py: {error}", file=sys.stderr)
        return 1
    finally:
        os.unlink(script.name)
    meta["load_average_end"] = load_average()
    summaries = {app: summarize(app_runs) for app, app_runs in runs.items()}
    write_json(os.path.join(args.results_dir, "service.json"), {"meta": meta, "summary": summaries, "runs": runs})
    lines = report(summaries, meta)
    with open(os.path.join(args.results_dir, "service.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    errors = [(app, p, r["errors"]) for app, app_runs in runs.items() for p, results in app_runs.items()
              for r in results if r["errors"]]
    for app, profiler, count in errors:
        print(f"FAILED: {count} request errors in {app} with {profiler}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
