#!/usr/bin/env python3
"""Run the stress configurations of config.yaml without profiling, with lockprof, with
ddtrace's lock collector and with lockprof's inside ddtrace (when ddtrace is installed), and
validate lockprof's profiles.

    python run.py RESULTS_DIR [--repeat 3] [--scale 1.0] [--profilers none,lockprof,ddtrace,ddtrace-lockprof]
    BENCHMARK_CONFIGS="high-contention-10-threads,long-held-locks" python run.py RESULTS_DIR

Each run is its own process (scenario.py), so no profiler's patching outlives its run, pinned to
one CPU (--cpu) so that its threads hand the GIL over the same way from one run to the next. The
profilers of one configuration run in turn, the order rotated from one repetition to the next;
the figures are medians over the repetitions. RESULTS_DIR receives every run's JSON (raw/), the
profiles (profiles/), summary.json and summary.md.

Exit status: 0 when every run finished and every lockprof profile passed its validation (the
throughput targets are informative), 1 otherwise, 2 for bad arguments or configuration.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import profilers  # noqa: E402  (benchmarks/profilers.py)
from benchutil import check_cpu, cpu_model, last_cpu, pinned_to, rotated, write_json  # noqa: E402
from validate import validate  # noqa: E402

# lockprof may cost at most this much throughput against no profiling (the target).
MAX_THROUGHPUT_LOSS_PCT = 5.0
METRICS = ("duration_s", "cpu_s", "total_operations", "operations_per_sec", "avg_acquire_ms",
           "max_acquire_ms", "contentions", "errors")


def load_configs(path: str) -> Dict[str, Dict[str, Any]]:
    import yaml  # PyYAML: benchmarks/requirements.txt

    with open(path, encoding="utf-8") as f:
        configs = yaml.safe_load(f)
    if not isinstance(configs, dict) or not all(isinstance(v, dict) and "scenario_type" in v
                                                for v in configs.values()):
        raise ValueError(f"{path}: expected a mapping of configuration names to scenario options "
                         "with a scenario_type")
    return configs


def selected(configs: Dict[str, Dict[str, Any]], names: str) -> Dict[str, Dict[str, Any]]:
    """The configurations named in a BENCHMARK_CONFIGS value (all of them when empty)."""
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in configs]
    if unknown:
        raise ValueError(f"BENCHMARK_CONFIGS names unknown configurations: {', '.join(unknown)}; "
                         f"known: {', '.join(configs)}")
    return {name: configs[name] for name in wanted} if wanted else configs


def scenario_command(options: Dict[str, Any], profiler: str, profile_dir: str, json_path: str,
                     scale: float) -> List[str]:
    command = [sys.executable, os.path.join(HERE, "scenario.py")]
    for key, value in options.items():
        command += [f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    command += ["--profiler", profiler, "--json", json_path, "--scale", str(scale)]
    if profiler != "none":
        command += ["--profile_dir", profile_dir]
    return command


def run_one(name: str, options: Dict[str, Any], profiler: str, repetition: int, args) -> Dict[str, Any]:
    tag = f"{name}.{profiler}.{repetition}"
    json_path = os.path.join(args.results_dir, "raw", f"{tag}.json")
    profile_dir = os.path.join(args.results_dir, "profiles", tag)
    command = scenario_command(options, profiler, profile_dir, json_path, args.scale)
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout,
                                   preexec_fn=pinned_to(args.cpu))
    except subprocess.TimeoutExpired:
        return {"failed": f"did not finish within {args.timeout:g} s"}
    if completed.returncode != 0:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-5:]
        return {"failed": f"exit status {completed.returncode}: " + " | ".join(tail)}
    with open(json_path, encoding="utf-8") as f:
        result = json.load(f)
    if profiler == "lockprof":
        result["validation"] = [vars(check) for check in validate(result)]
    return result


def summarize(name: str, runs: Dict[str, List[Dict[str, Any]]]) -> Dict[str, Any]:
    summary: Dict[str, Any] = {"config": name, "profilers": {}}
    for profiler, results in runs.items():
        done = [r for r in results if "failed" not in r]
        entry: Dict[str, Any] = {"runs": len(results), "failures": [r["failed"] for r in results if "failed" in r]}
        if done:
            entry.update({metric: statistics.median(r[metric] for r in done) for metric in METRICS})
            entry["operations_per_sec_runs"] = [r["operations_per_sec"] for r in done]
            # How far apart the runs of one profiler are: a change smaller than this is noise.
            entry["spread_pct"] = (max(entry["operations_per_sec_runs"]) - min(entry["operations_per_sec_runs"])) \
                / entry["operations_per_sec"] * 100.0
        if profiler == "lockprof":
            entry["validation_failures"] = [
                f"{check['name']}: {check['detail']}" for r in done for check in r["validation"] if not check["ok"]]
            entry["validation"] = [r["validation"] for r in done]
        summary["profilers"][profiler] = entry
    base = summary["profilers"].get("none", {}).get("operations_per_sec")
    for profiler, entry in summary["profilers"].items():
        if profiler != "none" and base and "operations_per_sec" in entry:
            entry["throughput_change_pct"] = (entry["operations_per_sec"] / base - 1.0) * 100.0
    lockprof_change = summary["profilers"].get("lockprof", {}).get("throughput_change_pct")
    if lockprof_change is not None:
        summary["throughput_target_met"] = lockprof_change >= -MAX_THROUGHPUT_LOSS_PCT
    return summary


def table(summaries: List[Dict[str, Any]], profiler_names: List[str]) -> List[str]:
    """summary.md: one row per configuration and profiler."""
    lines = ["| configuration | profiler | ops/sec | runs' spread | change | duration s | CPU s | avg acquire ms | "
             "max acquire ms | contentions | errors | profile check |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for summary in summaries:
        for profiler in profiler_names:
            entry = summary["profilers"][profiler]
            if "operations_per_sec" not in entry:
                lines.append(f"| {summary['config']} | {profiler} | FAILED: {'; '.join(entry['failures'])} |"
                             + " |" * 9)
                continue
            change = entry.get("throughput_change_pct")
            shown_change = "" if change is None else f"{change:+.1f}%"
            if profiler == "lockprof" and change is not None and change < -MAX_THROUGHPUT_LOSS_PCT:
                shown_change += " **MISS**"
            check = ""
            if profiler == "lockprof":
                check = "ok" if not entry["validation_failures"] else "FAIL: " + "; ".join(entry["validation_failures"])
            lines.append(
                f"| {summary['config']} | {profiler} | {entry['operations_per_sec']:,.0f} | {entry['spread_pct']:.0f}% | "
                f"{shown_change} | "
                f"{entry['duration_s']:.2f} | {entry['cpu_s']:.2f} | {entry['avg_acquire_ms']:.3f} | "
                f"{entry['max_acquire_ms']:.1f} | {entry['contentions']:.0f} | {entry['errors']:.0f} | {check} |")
    return lines


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results_dir", metavar="RESULTS_DIR")
    parser.add_argument("--config", default=os.path.join(HERE, "config.yaml"))
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration and profiler (default 3)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply operation counts and hold times (smoke runs: 0.05)")
    parser.add_argument("--profilers", default=None,
                        help="comma-separated, from none, lockprof, ddtrace, ddtrace-lockprof "
                             "(default: all that are installed)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one run may take (default 600)")
    parser.add_argument("--cpu", type=int, default=last_cpu(),
                        help="run every scenario on this one CPU (default the last one; -1: not pinned)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or not args.scale > 0 or not args.timeout > 0:
        parser.error("--repeat, --scale and --timeout must be positive")
    try:
        args.profilers = profilers.choose(args.profilers)
        check_cpu(args.cpu)
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        configs = selected(load_configs(args.config), os.environ.get("BENCHMARK_CONFIGS", ""))
    except (OSError, ValueError) as error:
        print(f"run.py: {error}", file=sys.stderr)
        return 2
    os.makedirs(os.path.join(args.results_dir, "raw"), exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    print(f"lock profiler stress: {len(configs)} configurations x {args.profilers} x {args.repeat}, "
          f"scale {args.scale:g}, Python {platform.python_version()}")
    summaries = []
    for name, options in configs.items():
        runs: Dict[str, List[Dict[str, Any]]] = {profiler: [] for profiler in args.profilers}
        for repetition in range(args.repeat):
            for profiler in rotated(args.profilers, repetition):
                began = time.perf_counter()
                result = run_one(name, options, profiler, repetition, args)
                runs[profiler].append(result)
                shown = result.get("failed") or f"{result['operations_per_sec']:,.0f} ops/s"
                failed_checks = [c["name"] for c in result.get("validation", []) if not c["ok"]]
                if failed_checks:
                    shown += f"; profile check FAILED: {', '.join(failed_checks)}"
                print(f"  {name:<32} {profiler:<9} #{repetition}  {shown}  ({time.perf_counter() - began:.1f} s)",
                      flush=True)
        summaries.append(summarize(name, runs))

    meta = {"date": started, "python": sys.version.split()[0], "cpu": cpu_model(), "cpus": os.cpu_count(),
            "platform": platform.platform(), "profilers": args.profilers, "repeat": args.repeat,
            "scale": args.scale, "cpu_pinned": args.cpu, "ddtrace": profilers.ddtrace_version()}
    write_json(os.path.join(args.results_dir, "summary.json"), {"meta": meta, "configs": summaries})
    lines = table(summaries, args.profilers)
    with open(os.path.join(args.results_dir, "summary.md"), "w", encoding="utf-8") as f:
        f.write(f"Python {meta['python']}, {meta['cpu']} ({meta['cpus']} CPUs), {started}, "
                f"scale {args.scale:g}, median of {args.repeat}, pinned to CPU {args.cpu}\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))

    failures = [(s["config"], p, e["failures"]) for s in summaries for p, e in s["profilers"].items() if e["failures"]]
    invalid = [(s["config"], s["profilers"]["lockprof"]["validation_failures"]) for s in summaries
               if s["profilers"].get("lockprof", {}).get("validation_failures")]
    compared = [s for s in summaries if "throughput_target_met" in s]
    if compared:
        misses = [s["config"] for s in compared if not s["throughput_target_met"]]
        print(f"\nthroughput with lockprof within {MAX_THROUGHPUT_LOSS_PCT:g}% of no profiling: "
              f"{len(compared) - len(misses)} of {len(compared)} configurations"
              + (f" (missed: {', '.join(misses)})" if misses else ""))
    for config, profiler, reasons in failures:
        print(f"FAILED run: {config} with {profiler}: {'; '.join(reasons)}")
    for config, reasons in invalid:
        print(f"FAILED profile validation: {config}: {'; '.join(reasons)}")
    return 1 if failures or invalid else 0


if __name__ == "__main__":
    sys.exit(main())
