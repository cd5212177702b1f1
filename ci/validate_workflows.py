"""Check the forge workflows (ci/workflows/) and the cibuildwheel configuration (pyproject.toml).

    python ci/validate_workflows.py

Needs PyYAML and cibuildwheel 4.x (the wheels workflow runs pypa/cibuildwheel@v4), installed
anywhere but the project, for example in a scratch virtual environment (Python 3.11+), and for
the 3.13t wheels' job (pypa/cibuildwheel@v3) a Python with cibuildwheel 3.x, named by CIBW3_PYTHON:

    python3 -m venv /tmp/wf && /tmp/wf/bin/pip install pyyaml 'cibuildwheel>=4.3,<5'
    python3 -m venv /tmp/wf3 && /tmp/wf3/bin/pip install 'cibuildwheel>=3.4,<4'
    CIBW3_PYTHON=/tmp/wf3/bin/python /tmp/wf/bin/python ci/validate_workflows.py

Not part of .ci/run: it needs those installs from the network. What it checks:
  - every YAML file in ci/workflows/ parses and has the shape of a workflow;
  - every run: step that tests or builds calls ci/test.sh or ci/dist.sh (the scripts .ci/run
    runs), and the test/dist/sdist steps are there with the expected command lines;
  - the test matrix, the pinned actions, no secret or token, and the publish job's guards
    (v* tag only, `pypi` environment, id-token: write, no password);
  - `cibuildwheel --print-build-identifiers --platform linux|macos|windows` lists exactly
    cp39..cp315 and cp314t for the configured archs; the wheels jobs (with each job's CIBW_BUILD
    and CIBW_ENABLE, run by the cibuildwheel major version it uses) together build each
    identifier once, cp313t included;
    tests are skipped exactly for the emulated Linux aarch64 wheels.
Exit status 0 when everything holds, 1 when something does not, 2 when a tool is missing.
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / "ci" / "workflows"

# 3.14 and 3.15 are built (and their wheels tested) only by the wheels workflow: no machine of
# ours runs them.
PYTHONS = ["cp39", "cp310", "cp311", "cp312", "cp313", "cp314", "cp315", "cp313t", "cp314t"]
# cibuildwheel 4 dropped the free-threaded 3.13: its wheels come from a job on cibuildwheel 3.
NOT_IN_PYPROJECT = {"cp313t"}
CIBUILDWHEEL_MAJOR = "4"


def identifiers(pythons) -> dict:
    return {
        "linux": {f"{py}-{libc}_{arch}" for py in pythons for libc in ("manylinux", "musllinux")
                  for arch in ("x86_64", "aarch64")},
        "macos": {f"{py}-macosx_{arch}" for py in pythons for arch in ("x86_64", "arm64")},
        "windows": {f"{py}-win_amd64" for py in pythons},
    }


EXPECTED = identifiers(PYTHONS)  # every wheel the workflow builds
FROM_PYPROJECT = identifiers([py for py in PYTHONS if py not in NOT_IN_PYPROJECT])
UNTESTED = {i for i in EXPECTED["linux"] if i.endswith("_aarch64")}  # built under QEMU

# The actions the workflows may use, at these refs only.
ALLOWED_ACTIONS = {
    "actions/checkout@v4",
    "actions/setup-python@v5",
    "actions/setup-go@v5",
    "actions/upload-artifact@v4",
    "actions/download-artifact@v4",
    "docker/setup-qemu-action@v3",
    "pypa/cibuildwheel@v4",
    "pypa/cibuildwheel@v3",  # the 3.13t wheels only
    "pypa/gh-action-pypi-publish@release/v1",
}
# A run: step that does any of this tests or builds, so it must go through the CI scripts.
TESTING = re.compile(r"\b(pytest|unittest|tox|nox|pip3? install|-m pip|-m build|setup\.py|"
                     r"check_dist\.py|benchmarks/|examples/)", re.IGNORECASE)
SCRIPT_CALL = re.compile(r"(^|[;&|\s])bash ci/(test|dist)\.sh\b")

problems: list = []


def problem(message: str) -> None:
    problems.append(message)
    print(f"  FAIL {message}")


def ok(message: str) -> None:
    print(f"  ok   {message}")


def missing_tool(what: str) -> int:
    print(f"validate_workflows: {what} is not installed for {sys.executable}.\n"
          "Install the checker's tools into a scratch virtual environment, not the project's:\n"
          "    python3 -m venv /tmp/wf && /tmp/wf/bin/pip install pyyaml 'cibuildwheel>=4.3,<5'\n"
          "    /tmp/wf/bin/python ci/validate_workflows.py", file=sys.stderr)
    return 2


# ------------------------------------------------------------------ workflows

def load_workflows(yaml) -> dict:
    files = sorted(list(WORKFLOWS.glob("*.yml")) + list(WORKFLOWS.glob("*.yaml")))
    if not files:
        problem(f"no workflow files in {WORKFLOWS}")
    loaded = {}
    for path in files:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            problem(f"{path.name}: does not parse: {error}")
            continue
        # YAML 1.1 (PyYAML) reads the key `on` as the boolean True.
        if not isinstance(doc, dict) or ("on" not in doc and True not in doc) or not isinstance(doc.get("jobs"), dict):
            problem(f"{path.name}: not a workflow (needs `on:` and `jobs:`)")
            continue
        doc["on"] = doc.pop(True, doc.get("on"))
        ok(f"{path.name}: parses ({len(doc['jobs'])} jobs: {', '.join(doc['jobs'])})")
        loaded[path.name] = (path, doc)
    return loaded


def steps_of(job: dict) -> list:
    return [s for s in job.get("steps") or [] if isinstance(s, dict)]


def check_common(name: str, path: Path, doc: dict) -> None:
    text = path.read_text(encoding="utf-8")
    if re.search(r"\bsecrets\.", text) or re.search(r"\b(password|api[-_]token)\s*:", text, re.IGNORECASE):
        problem(f"{name}: refers to a secret, a password or an API token")
    for job_id, job in doc["jobs"].items():
        if "runs-on" not in job:
            problem(f"{name}: job {job_id} has no runs-on")
        steps = steps_of(job)
        if not steps:
            problem(f"{name}: job {job_id} has no steps")
        for index, step in enumerate(steps):
            where = f"{name}: job {job_id}, step {index + 1} ({step.get('name') or step.get('uses') or 'run'})"
            if ("uses" in step) == ("run" in step):
                problem(f"{where}: needs exactly one of uses: and run:")
            if "uses" in step and step["uses"] not in ALLOWED_ACTIONS:
                problem(f"{where}: uses {step['uses']}, not one of the allowed actions/refs")
            if "run" in step:
                command = str(step["run"])
                if (TESTING.search(command) or "test" in str(step.get("name", "")).lower()) \
                        and not SCRIPT_CALL.search(command):
                    problem(f"{where}: tests or builds without ci/test.sh or ci/dist.sh: {command.strip()!r}")
    runs = [str(s["run"]).strip() for j in doc["jobs"].values() for s in steps_of(j) if "run" in s]
    testing = [r for r in runs if SCRIPT_CALL.search(r)]
    if testing:
        ok(f"{name}: every testing run: step calls the CI scripts: {testing}")
    if not re.search(r"\bsecrets\.", text):
        ok(f"{name}: no secrets or tokens")


def find_job(doc: dict, command: str):
    for job_id, job in doc["jobs"].items():
        for step in steps_of(job):
            if str(step.get("run", "")).strip() == command:
                return job_id, job
    return None, None


def uses(job: dict, action: str) -> bool:
    return any(str(s.get("uses", "")).startswith(action + "@") for s in steps_of(job))


def env_value(doc: dict, job: dict, key: str):
    return (job.get("env") or {}).get(key, (doc.get("env") or {}).get(key))


def shell_of(doc: dict, job: dict, step_command: str):
    for step in steps_of(job):
        if str(step.get("run", "")).strip() == step_command and "shell" in step:
            return step["shell"]
    return ((job.get("defaults") or {}).get("run") or {}).get("shell") or \
        ((doc.get("defaults") or {}).get("run") or {}).get("shell")


def check_script_job(name: str, doc: dict, command: str) -> dict:
    job_id, job = find_job(doc, command)
    if job is None:
        problem(f"{name}: no step runs exactly `{command}`")
        return {}
    if shell_of(doc, job, command) != "bash":
        problem(f"{name}: job {job_id}: `{command}` does not run with shell: bash")
    for action in ("actions/checkout", "actions/setup-python", "actions/setup-go"):
        if not uses(job, action):
            problem(f"{name}: job {job_id} does not use {action}")
    if str(env_value(doc, job, "LOCKPROF_REQUIRE_GO")) != "1":
        problem(f"{name}: job {job_id} does not set LOCKPROF_REQUIRE_GO=1")
    ok(f"{name}: job {job_id} runs `{command}` (bash, Python and Go set up, LOCKPROF_REQUIRE_GO=1)")
    return job


def check_test_workflow(name: str, doc: dict) -> None:
    triggers = doc["on"]
    if not (isinstance(triggers, (dict, list)) and "push" in triggers and "pull_request" in triggers):
        problem(f"{name}: does not run on push and pull_request")
    job = check_script_job(name, doc, "bash ci/test.sh python")
    if job:
        matrix = (job.get("strategy") or {}).get("matrix") or {}
        oses = set(matrix.get("os") or [])
        pythons = {str(p) for p in matrix.get("python") or []}
        want_os = {"ubuntu-latest", "macos-latest", "windows-latest"}
        want_py = {"3.9", "3.10", "3.11", "3.12", "3.13"}
        if oses != want_os or pythons != want_py:
            problem(f"{name}: test matrix is {sorted(oses)} x {sorted(pythons)}")
        else:
            ok(f"{name}: test matrix {sorted(oses)} x {sorted(pythons)} ({len(oses) * len(pythons)} jobs)")
    dist = check_script_job(name, doc, "bash ci/dist.sh python")
    if dist and dist.get("runs-on") != "ubuntu-latest":
        problem(f"{name}: the dist job runs on {dist.get('runs-on')}, not ubuntu-latest")


def check_wheels_workflow(name: str, doc: dict) -> list:
    triggers = doc["on"]
    tags = (((triggers or {}).get("push") or {}).get("tags") or []) if isinstance(triggers, dict) else []
    if "v*" not in tags or "workflow_dispatch" not in (triggers or {}):
        problem(f"{name}: should run on push of tags v* and on workflow_dispatch")
    else:
        ok(f"{name}: runs on tags v* and workflow_dispatch")
    wheel_jobs = []
    for job_id, job in doc["jobs"].items():
        if not uses(job, "pypa/cibuildwheel"):
            continue
        include = ((job.get("strategy") or {}).get("matrix") or {}).get("include") or []
        step = next(s for s in steps_of(job) if str(s.get("uses", "")).startswith("pypa/cibuildwheel@"))
        major = str(step["uses"]).split("@v", 1)[-1]
        # The job's own selection, over pyproject.toml's (the matrix sets platform and archs).
        selection = {k: str(v) for k, v in (step.get("env") or {}).items()
                     if k in ("CIBW_BUILD", "CIBW_SKIP", "CIBW_ENABLE")}
        for entry in include:
            wheel_jobs.append((str(entry.get("platform")), str(entry.get("archs")), str(entry.get("os")),
                               major, selection))
            if entry.get("archs") == "aarch64":
                step = next((s for s in steps_of(job) if str(s.get("uses", "")).startswith("docker/setup-qemu-action@")), None)
                if step is None:
                    problem(f"{name}: aarch64 wheels without docker/setup-qemu-action")
        if not any(str(s.get("uses", "")).startswith("actions/upload-artifact@") for s in steps_of(job)):
            problem(f"{name}: job {job_id} does not upload its wheels")
    if not wheel_jobs:
        problem(f"{name}: no cibuildwheel job with a matrix include of platform/archs/os")
    else:
        ok(f"{name}: cibuildwheel jobs: {', '.join(f'{o} ({p} {a}, v{m})' for p, a, o, m, _ in wheel_jobs)}")

    sdist_id, sdist = find_job(doc, "bash ci/dist.sh python dist")
    if sdist is None:
        problem(f"{name}: no step runs exactly `bash ci/dist.sh python dist`")
    else:
        upload = [s for s in steps_of(sdist) if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
        if not upload or (upload[0].get("with") or {}).get("path") != "dist/*.tar.gz":
            problem(f"{name}: job {sdist_id} does not upload dist/*.tar.gz (and only that)")
        else:
            ok(f"{name}: job {sdist_id} runs `bash ci/dist.sh python dist` and uploads dist/*.tar.gz")

    publishers = [(j, job) for j, job in doc["jobs"].items() if uses(job, "pypa/gh-action-pypi-publish")]
    for job_id, job in publishers:
        condition = str(job.get("if", ""))
        environment = job.get("environment")
        environment = environment.get("name") if isinstance(environment, dict) else environment
        permissions = job.get("permissions") or {}
        step = next(s for s in steps_of(job) if str(s.get("uses", "")).startswith("pypa/gh-action-pypi-publish@"))
        needs = job.get("needs") or []
        needs = [needs] if isinstance(needs, str) else needs
        checks = [
            ("runs on a v* tag push only", "github.event_name == 'push'" in condition
             and "startsWith(github.ref, 'refs/tags/v')" in condition),
            ("environment pypi", environment == "pypi"),
            ("permissions id-token: write", permissions.get("id-token") == "write"),
            ("no password/token input (trusted publishing)", not set(step.get("with") or {}) & {"password", "user"}),
            ("needs every build job", set(needs) >= {j for j, jb in doc["jobs"].items() if jb is not job
                                                      and any(str(s.get("uses", "")).startswith("actions/upload-artifact@")
                                                              for s in steps_of(jb))}),
            ("downloads the artefacts", uses(job, "actions/download-artifact")),
        ]
        for what, holds in checks:
            (ok if holds else problem)(f"{name}: job {job_id}: {what}")
    return wheel_jobs


# ------------------------------------------------------------------ cibuildwheel

def cibuildwheel_identifiers(platform: str, archs=None, selection=None, python=sys.executable) -> set:
    # As the workflow runs it: the job's CIBW_ARCHS and selection (if any) over pyproject.toml.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIBW_")}
    settings = dict(selection or {}, **({"CIBW_ARCHS": archs} if archs else {}))
    env.update(settings)
    command = [python, "-m", "cibuildwheel", "--print-build-identifiers", "--platform", platform]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    shown = "".join(f"{k}={v!r} " for k, v in sorted(settings.items())) + \
        ("" if python == sys.executable else f"{python} -m ") + \
        "cibuildwheel --print-build-identifiers --platform " + platform
    if result.returncode != 0:
        problem(f"`{shown}` failed: {result.stderr.strip()}")
        return set()
    identifiers = result.stdout.split()
    print(f"  $ {shown}\n    {' '.join(identifiers)}")
    if len(identifiers) != len(set(identifiers)):
        problem(f"`{shown}` lists an identifier twice")
    return set(identifiers)


def check_cibuildwheel(wheel_jobs: list) -> None:
    try:
        from importlib.metadata import version
        cibw_version = version("cibuildwheel")
    except Exception:
        cibw_version = "unknown"
    if not cibw_version.startswith(CIBUILDWHEEL_MAJOR + "."):
        problem(f"cibuildwheel {cibw_version} here; the wheels workflow runs pypa/cibuildwheel@v{CIBUILDWHEEL_MAJOR}")
    for platform, expected in FROM_PYPROJECT.items():
        found = cibuildwheel_identifiers(platform)
        if found == expected:
            ok(f"--platform {platform}: exactly the {len(expected)} expected identifiers")
        elif found:
            problem(f"--platform {platform}: missing {sorted(expected - found)}, unexpected {sorted(found - expected)}")

    # The wheels jobs, each with its CIBW_ARCHS, must build every identifier exactly once (two
    # jobs building the same wheel would collide when the artefacts are merged for publishing).
    built: dict = {}
    for major in sorted({job[3] for job in wheel_jobs} - {CIBUILDWHEEL_MAJOR}):
        if not os.environ.get(f"CIBW{major}_PYTHON"):
            problem(f"a wheels job runs cibuildwheel v{major}: set CIBW{major}_PYTHON to a Python "
                    f"with cibuildwheel {major}.x to list what it builds")
    for platform, archs, runner, major, selection in wheel_jobs:
        python = sys.executable
        if major != CIBUILDWHEEL_MAJOR:
            python = os.environ.get(f"CIBW{major}_PYTHON", "")
            if not python:
                continue
        for identifier in cibuildwheel_identifiers(platform, archs, selection, python):
            built.setdefault(identifier, []).append(f"{runner} v{major}")
    everything = set().union(*EXPECTED.values())
    twice = {i: r for i, r in built.items() if len(r) > 1}
    if set(built) == everything and not twice:
        ok(f"the wheels jobs build each of the {len(everything)} identifiers exactly once")
    elif wheel_jobs:
        problem(f"the wheels jobs: missing {sorted(everything - set(built))}, "
                f"unexpected {sorted(set(built) - everything)}, built twice {sorted(twice)}")

    # Which wheels are tested: cibuildwheel's test-skip selector (fnmatch patterns).
    try:
        import tomllib
    except ImportError:  # Python < 3.11: cibuildwheel depends on tomli there
        import tomli as tomllib
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["cibuildwheel"]
    patterns = config.get("test-skip", [])
    patterns = patterns.split() if isinstance(patterns, str) else patterns
    skipped = {i for i in everything if any(fnmatch.fnmatch(i, p) for p in patterns)}
    if skipped == UNTESTED:
        ok(f"test-skip {patterns}: tests skipped for the {len(skipped)} linux aarch64 wheels only")
    else:
        problem(f"test-skip {patterns} skips {sorted(skipped)}, expected {sorted(UNTESTED)}")
    if not config.get("test-command"):
        problem("pyproject.toml: no [tool.cibuildwheel] test-command")


def main() -> int:
    try:
        import yaml
    except ImportError:
        return missing_tool("PyYAML")
    try:
        import cibuildwheel  # noqa: F401
    except ImportError:
        return missing_tool("cibuildwheel")

    print(f"== workflows in {WORKFLOWS.relative_to(ROOT)}/")
    loaded = load_workflows(yaml)
    for name, (path, doc) in loaded.items():
        check_common(name, path, doc)
    wheel_jobs = []
    if "test.yml" in loaded:
        check_test_workflow("test.yml", loaded["test.yml"][1])
    else:
        problem("no ci/workflows/test.yml")
    if "wheels.yml" in loaded:
        wheel_jobs = check_wheels_workflow("wheels.yml", loaded["wheels.yml"][1])
    else:
        problem("no ci/workflows/wheels.yml")

    print("== cibuildwheel (pyproject.toml [tool.cibuildwheel])")
    check_cibuildwheel(wheel_jobs)

    print(f"validate_workflows: {'FAILED, ' + str(len(problems)) + ' problem(s)' if problems else 'ok'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
