#!/usr/bin/env python3
"""The service benchmark: app.py on gunicorn's threaded workers, loaded by wrk on loopback,
with profiling off, with lockprof at its defaults and with ddtrace's lock collector.

    python run.py RESULTS_DIR [--duration 20] [--rounds 3] [--connections 16] [--delay-ms 20]

Each round serves the application once per profiler (the order rotated from round to round):
start gunicorn on 127.0.0.1 (one worker process, --threads request threads), check through
/info that the worker runs the intended profiler, warm up, then one wrk run of --duration
seconds; gunicorn runs on one CPU and wrk on another (--server-cpu), so neither takes the
other's core from one run to the next. Every wrk connection waits --delay-ms between its
requests (a wrk Lua delay()), so the service runs below saturation, as a production service does: the same request rate with and
without profiling, so the worker's CPU time shows what profiling costs, and latency is not
dominated by queueing. Reported per profiler, medians over the rounds: p50 and p99 latency
(wrk's), requests per second, the worker's CPU seconds over the wrk run (from /proc) and CPU
per request. Needs Linux (/proc), wrk (Debian: apt-get install wrk) and
benchmarks/requirements.txt; traffic only goes to 127.0.0.1, every run is bounded in time.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
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
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import profilers  # noqa: E402  (benchmarks/profilers.py)
from benchutil import check_cpu, cpu_model, last_cpu, pinned_to, rotated, write_json  # noqa: E402

# lockprof may cost at most this much p99 latency and CPU against profiling off (the issue's target).
MAX_INCREASE_PCT = 3.0
# The seeds' production benchmark, for the pure-Python collector (quoted, not measured here).
SEEDS = {"p50": "+11-12%", "p99": "+37-40%", "cpu": "+160%"}
# What /info must report as the type of the application's Lock under each profiler.
LOCK_TYPES = {"none": ("lock",), "lockprof": ("ProfiledLock",),
              "ddtrace": ("_ProfiledThreadingLock",), "ddtrace-lockprof": ("ProfiledLock",)}
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 2.0) -> Dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # 127.0.0.1 only
        return json.load(response)


def worker_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
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


class Server:
    """gunicorn serving app.py with one threaded worker, under one profiler."""

    def __init__(self, profiler: str, profile_dir: str, threads: int, log_path: str, cpu: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, BENCH_SERVICE_PROFILER=profiler, BENCH_SERVICE_PROFILE_DIR=profile_dir)
        command = [sys.executable, "-m", "gunicorn", "--chdir", HERE, "--bind", f"127.0.0.1:{self.port}",
                   "--workers", "1", "--worker-class", "gthread", "--threads", str(threads),
                   "--backlog", "256", "--log-level", "warning", "app:app"]
        self.log = open(log_path, "w", encoding="utf-8")
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        preexec_fn=pinned_to(cpu))

    def wait_ready(self, timeout: float) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with status {self.process.returncode} (see {self.log.name})")
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


def wrk(url: str, duration: int, connections: int, script: str, cpu: int) -> str:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script, url]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60,
                               preexec_fn=pinned_to(cpu))
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()}")
    return completed.stdout


def run_one(profiler: str, round_: int, args, script: str) -> Dict[str, Any]:
    tag = f"{profiler}.{round_}"
    profile_dir = os.path.join(args.results_dir, "profiles", tag)
    server = Server(profiler, profile_dir, args.threads, os.path.join(args.results_dir, f"gunicorn.{tag}.log"),
                    args.server_cpu)
    try:
        info = server.wait_ready(args.startup_timeout)
        if info["profiler"] != profiler or info["lock_type"] not in LOCK_TYPES[profiler]:
            raise RuntimeError(f"the worker reports profiler {info['profiler']!r} with locks of type "
                               f"{info['lock_type']!r}; expected {profiler!r} / {LOCK_TYPES[profiler]}")
        url = server.url + "/work"
        wrk(url, args.warmup, args.connections, script, args.client_cpu)
        cpu_before = worker_cpu_seconds(info["pid"])
        output = wrk(url, args.duration, args.connections, script, args.client_cpu)
        cpu = worker_cpu_seconds(info["pid"]) - cpu_before
    finally:
        server.stop()
    result = parse_wrk(output)
    result.update({"cpu_s": cpu, "cpu_us_per_request": cpu / max(1, result["requests"]) * 1e6,
                   "worker_pid": info["pid"], "lock_type": info["lock_type"], "wrk": output})
    if profiler != "none":
        result["profile_files"] = sorted(glob.glob(os.path.join(profile_dir, f"*.{info['pid']}.*.pprof")))
        if not result["profile_files"]:
            raise RuntimeError(f"{profiler} wrote no profile in {profile_dir}")
    return result


METRICS = ("p50_ms", "p99_ms", "requests_per_sec", "cpu_s", "cpu_us_per_request", "errors")


def summarize(runs: Dict[str, List[Dict[str, Any]]]) -> Dict[str, Dict[str, Any]]:
    summary = {profiler: {metric: statistics.median(r[metric] for r in results) for metric in METRICS}
               for profiler, results in runs.items()}
    base = summary.get("none")
    for profiler, entry in summary.items():
        if base and profiler != "none":
            entry["change_pct"] = {metric: (entry[metric] / base[metric] - 1.0) * 100.0
                                   for metric in METRICS if metric != "errors" and base[metric]}
    return summary


def report(summary: Dict[str, Dict[str, Any]], meta: Dict[str, Any]) -> List[str]:
    lines = [f"service benchmark: Python {meta['python']}, {meta['cpu']} ({meta['cpus']} CPUs), {meta['date']}; "
             f"gunicorn gthread, 1 worker x {meta['threads']} threads on CPU {meta['server_cpu']}; "
             f"wrk on CPU {meta['client_cpu']}, {meta['connections']} connections, "
             f"{meta['delay_ms']:g} ms between requests, {meta['duration']:g} s x {meta['rounds']} rounds (medians)",
             "",
             "| profiler | p50 ms | p99 ms | requests/s | worker CPU s | CPU us/request | errors |",
             "|---|---|---|---|---|---|---|"]
    for profiler, entry in summary.items():
        change = entry.get("change_pct", {})

        def cell(metric: str, fmt: str) -> str:
            shown = format(entry[metric], fmt)
            return f"{shown} ({change[metric]:+.1f}%)" if metric in change else shown

        lines.append(f"| {profiler} | {cell('p50_ms', '.2f')} | {cell('p99_ms', '.2f')} | "
                     f"{cell('requests_per_sec', ',.0f')} | {cell('cpu_s', '.2f')} | "
                     f"{cell('cpu_us_per_request', ',.0f')} | {entry['errors']:.0f} |")
    lines.append(f"| seeds' pure-Python collector (quoted) | {SEEDS['p50']} | {SEEDS['p99']} | | {SEEDS['cpu']} | | |")
    lockprof = summary.get("lockprof", {}).get("change_pct")
    if lockprof:
        for metric, what in (("p99_ms", "p99 latency"), ("cpu_us_per_request", "CPU per request")):
            verdict = "PASS" if lockprof[metric] <= MAX_INCREASE_PCT else "MISS"
            lines.append(f"\n{verdict}  lockprof {what} within {MAX_INCREASE_PCT:g}% of profiling off: "
                         f"{lockprof[metric]:+.1f}%")
    return lines


def parse_args(argv: Optional[List[str]] = None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results_dir", metavar="RESULTS_DIR")
    parser.add_argument("--duration", type=int, default=20, help="seconds of each measured wrk run (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of wrk before measuring (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per profiler (default 3)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--delay-ms", type=float, default=20.0,
                        help="pause of each connection between requests, 0 to saturate (default 20)")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn request threads (default 8)")
    parser.add_argument("--startup-timeout", type=float, default=30.0)
    parser.add_argument("--server-cpu", type=int, default=last_cpu(),
                        help="run gunicorn on this one CPU, wrk on the others (default the last CPU; -1: not pinned)")
    parser.add_argument("--profilers", default=None,
                        help="comma-separated, from none, lockprof, ddtrace, ddtrace-lockprof "
                             "(default: all that are installed)")
    args = parser.parse_args(argv)
    if min(args.duration, args.warmup, args.startup_timeout) <= 0 or min(args.rounds, args.connections, args.threads) < 1:
        parser.error("--duration, --warmup, --startup-timeout, --rounds, --connections and --threads must be positive")
    if args.delay_ms < 0:
        parser.error("--delay-ms must be >= 0")
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
            "duration": args.duration, "warmup": args.warmup, "rounds": args.rounds,
            "connections": args.connections, "delay_ms": args.delay_ms, "threads": args.threads,
            "server_cpu": args.server_cpu, "client_cpu": args.client_cpu}
    runs: Dict[str, List[Dict[str, Any]]] = {profiler: [] for profiler in args.profilers}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f"function delay()\n  return {args.delay_ms:g}\nend\n")  # ms between requests
    try:
        for round_ in range(args.rounds):
            for profiler in rotated(args.profilers, round_):
                result = run_one(profiler, round_, args, script.name)
                runs[profiler].append(result)
                print(f"  round {round_} {profiler:<9} p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms  "
                      f"{result['requests_per_sec']:,.0f} req/s  worker CPU {result['cpu_s']:.2f} s  "
                      f"errors {result['errors']}", flush=True)
    except (RuntimeError, ValueError, OSError, subprocess.TimeoutExpired) as error:
        print(f"run.py: {error}", file=sys.stderr)
        return 1
    finally:
        os.unlink(script.name)
    summary = summarize(runs)
    write_json(os.path.join(args.results_dir, "service.json"), {"meta": meta, "summary": summary, "runs": runs})
    lines = report(summary, meta)
    with open(os.path.join(args.results_dir, "service.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    errors = [(p, r["errors"]) for p, results in runs.items() for r in results if r["errors"]]
    for profiler, count in errors:
        print(f"FAILED: {count} request errors with {profiler}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
