"""lockprof settings: defaults, environment variables and explicit arguments.

Each setting is described once, in ``_SETTINGS``: its name, its environment variable, a
human description of what is allowed, a ``check`` that validates and normalises a Python
value, and a ``from_text`` that turns the text of an environment variable into a Python value
(which then goes through the same ``check``).  The two ways of configuring lockprof share it:

* explicit arguments (``Config(...)``, ``Config.from_env(**overrides)``, ``dataclasses.replace``)
  are code, so a bad one raises ``TypeError`` (wrong type) or ``ValueError`` (bad value) with a
  message naming the argument and what it accepts;
* environment variables are not code, so a bad one never raises: it triggers exactly one
  ``LockprofConfigWarning`` naming the variable, the bad value and the default used instead.
  Empty or whitespace-only variables count as unset.

Settings (field -- environment variable -- allowed):

* ``lock_enabled`` -- ``DD_PROFILING_LOCK_ENABLED`` -- true/false, 1/0, yes/no, on/off (any case)
* ``capture_pct`` -- ``DD_PROFILING_CAPTURE_PCT`` -- a finite number in [0, 100]
* ``max_frames`` -- ``DD_PROFILING_MAX_FRAMES`` -- an integer in [1, 512]
* ``exclude_modules`` -- ``DD_PROFILING_LOCK_EXCLUDE_MODULES`` -- comma-separated dotted module
  names; invalid items are dropped (one warning), valid ones kept
* ``upload_interval`` -- ``DD_PROFILING_UPLOAD_INTERVAL`` -- seconds, a finite number in (0, 86400]
* ``output`` -- ``DD_PROFILING_OUTPUT_PPROF`` -- a path prefix (``~`` expanded); files are written
  as ``<output>.<pid>.<seq>.pprof``
* ``wait_sample_interval`` -- ``DD_PROFILING_LOCK_WAIT_SAMPLE_INTERVAL`` -- a duration from 1 ns
  to 60 s: an integer number of nanoseconds, or a number with a unit ``ns``, ``us`` (or ``µs``),
  ``ms`` or ``s`` (``250us``, ``1.5ms``); a contended wait at least this long is captured with
  its stack, a shorter one with probability wait / interval; beyond 5,000 captures a second the
  interval in force rises (docs/configuration.md)

Read from the environment only, by an integration (``env_setting()``), not Config fields:

* ``ddtrace`` -- ``LOCKPROF_DDTRACE`` -- a boolean: ddtrace's profiler hosts lockprof's lock
  collector from when ddtrace's profiler module is imported (lockprof.integrations.ddtrace)
"""

from __future__ import annotations

import math
import numbers
import os
import re
import sys
import tempfile
import warnings
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Tuple

__all__ = ["Config", "LockprofConfigWarning", "SettingInfo", "env_setting", "parse_setting", "settings"]


class LockprofConfigWarning(UserWarning):
    """A lockprof environment variable had a bad value; a default (or partial value) is used."""


# --------------------------------------------------------------------------------------------
# Validation primitives.  They raise _Invalid; _Setting turns that into the right error/warning.
# --------------------------------------------------------------------------------------------


class _Invalid(Exception):
    """A value is not acceptable.  ``wrong_type`` selects TypeError over ValueError for
    explicit arguments; ``got`` optionally replaces the default "got <repr>" detail."""

    def __init__(self, wrong_type: bool = False, got: Optional[str] = None) -> None:
        super().__init__(got)
        self.wrong_type = wrong_type
        self.got = got


class _PartlyInvalid(_Invalid):
    """Some items of a list are invalid: ``kept`` is the value made of the valid ones."""

    def __init__(self, kept: Any, bad: List[str]) -> None:
        super().__init__(got="invalid module name(s) " + ", ".join(_safe_repr(b) for b in bad))
        self.kept = kept
        self.bad = bad


def _safe_repr(value: Any, limit: int = 200) -> str:
    """repr() that never raises (huge ints, odd objects) and stays short."""
    try:
        text = repr(value)
    except Exception:  # e.g. an int of more than 4300 digits on 3.11+
        text = "<%s too large or odd to display>" % type(value).__name__
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def _check_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(wrong_type=True)
    return value


_BOOL_WORDS = {
    "true": True, "1": True, "yes": True, "on": True,
    "false": False, "0": False, "no": False, "off": False,
}


def _bool_from_text(text: str) -> bool:
    try:
        return _BOOL_WORDS[text.lower()]
    except KeyError:
        raise _Invalid() from None


def _number_checker(low: float, high: float, low_inclusive: bool) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise _Invalid(wrong_type=True)
        try:
            number = float(value)
        except (OverflowError, ValueError, TypeError):  # e.g. 10**400
            raise _Invalid() from None
        if not math.isfinite(number) or number > high:
            raise _Invalid()
        if number < low or (number == low and not low_inclusive):
            raise _Invalid()
        return number

    return check


def _float_from_text(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _Invalid() from None


def _int_checker(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise _Invalid(wrong_type=True)
        number = int(value)
        if not low <= number <= high:
            raise _Invalid()
        return number

    return check


def _int_from_text(text: str) -> int:
    try:
        return int(text)  # ValueError too for > 4300 digits on 3.11+
    except ValueError:
        raise _Invalid() from None


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*(ns|us|µs|ms|s)?")
_NS_PER_UNIT = {None: 1, "ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_MAX_DURATION_NS = 60 * 1_000_000_000


def _check_duration_ns(value: Any) -> int:
    """An int of nanoseconds, or a str with an optional unit -> int nanoseconds in range."""
    if isinstance(value, str):
        value = _duration_from_text(value.strip())
    elif isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _Invalid(wrong_type=True)
    number = int(value)
    if not 1 <= number <= _MAX_DURATION_NS:
        raise _Invalid()
    return number


def _duration_from_text(text: str) -> int:
    match = _DURATION.fullmatch(text)
    if match is None:
        raise _Invalid()
    number = float(text[: match.start(2)] if match.group(2) else text)
    nanoseconds = number * _NS_PER_UNIT[match.group(2)]
    if not math.isfinite(nanoseconds) or nanoseconds > _MAX_DURATION_NS:
        raise _Invalid()
    return round(nanoseconds)


def _is_module_name(name: str) -> bool:
    return all(part.isidentifier() for part in name.split("."))


def _check_modules(value: Any) -> Tuple[str, ...]:
    """A comma-separated str or an iterable of str -> tuple of stripped, de-duplicated names.

    Empty items are dropped; a non-str item is a type error; invalid names raise
    _PartlyInvalid carrying the valid ones.
    """
    if isinstance(value, str):
        items: Iterable[Any] = value.split(",")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raise _Invalid(wrong_type=True)
    else:
        try:
            items = iter(value)
        except TypeError:
            raise _Invalid(wrong_type=True) from None
    kept: List[str] = []
    bad: List[str] = []
    for item in items:
        if not isinstance(item, str):
            raise _Invalid(
                wrong_type=True,
                got="%s containing %s (%s)"
                % (type(value).__name__, _safe_repr(item), type(item).__name__),
            )
        name = item.strip()
        if not name:
            continue
        if not _is_module_name(name):
            bad.append(name)
        elif name not in kept:
            kept.append(name)
    if bad:
        raise _PartlyInvalid(tuple(kept), bad)
    return tuple(kept)


def _check_output(value: Any) -> str:
    if isinstance(value, os.PathLike):
        try:
            value = os.fspath(value)
        except Exception:
            raise _Invalid(wrong_type=True) from None
    if not isinstance(value, str):
        raise _Invalid(wrong_type=True)
    if not value.strip() or "\0" in value:
        raise _Invalid()
    return os.path.expanduser(value)


def _text_as_is(text: str) -> str:
    return text


# --------------------------------------------------------------------------------------------
# The table of settings.
# --------------------------------------------------------------------------------------------

_UNSET: Any = object()


@dataclass(frozen=True)
class _Setting:
    name: str  # the Config field and keyword argument
    env_var: str
    allowed: str  # completes "<name> must be ..." / "<VAR>=<value> is not ..."
    check: Callable[[Any], Any]  # Python value -> normalised value, or raises _Invalid
    from_text: Callable[[str], Any]  # stripped env text -> Python value, or raises _Invalid
    env_allowed: Optional[str] = None  # when env text accepts other things than code does
    # A Config field; else read from the environment only (env_setting()), default `default`.
    in_config: bool = True
    default: Any = None

    def from_argument(self, value: Any) -> Any:
        """Validate an explicit argument: raises TypeError / ValueError naming it."""
        try:
            return self.check(value)
        except _Invalid as exc:
            if exc.got is not None:
                got = exc.got
            elif exc.wrong_type:
                got = "%s (%s)" % (_safe_repr(value), type(value).__name__)
            else:
                got = _safe_repr(value)
            message = "%s must be %s, got %s" % (self.name, self.allowed, got)
            if exc.wrong_type:
                raise TypeError(message) from None
            raise ValueError(message) from None

    def from_environ(self, environ: Mapping[str, Any], default: Any) -> Any:
        """The value of the variable, or _UNSET; a bad value warns once and never raises."""
        raw = environ.get(self.env_var)
        if raw is None:
            return _UNSET
        if not isinstance(raw, str):
            _warn("%s=%s is not a string; using the default %s"
                  % (self.env_var, _safe_repr(raw), _safe_repr(default)))
            return _UNSET
        text = raw.strip()
        if not text:
            return _UNSET
        try:
            return self.check(self.from_text(text))
        except _PartlyInvalid as exc:
            _warn("%s=%s contains %s (each must be %s); ignoring them and using %s"
                  % (self.env_var, _safe_repr(raw), exc.got, _MODULE_ITEM, _safe_repr(exc.kept)))
            return exc.kept
        except _Invalid:
            _warn("%s=%s is not %s; using the default %s"
                  % (self.env_var, _safe_repr(raw), self.env_allowed or self.allowed,
                     _safe_repr(default)))
            return _UNSET

    def from_option(self, text: str) -> Any:
        """A command-line value, written as in the environment; ValueError saying what is allowed."""
        try:
            return self.check(self.from_text(text.strip()))
        except _Invalid as exc:
            # Unlike a variable, an option is typed by hand: reject it whole, no partial value.
            got = exc.got if exc.got is not None else _safe_repr(text)
            raise ValueError("must be %s, got %s" % (self.env_allowed or self.allowed, got)) from None

    def to_text(self, value: Any) -> str:
        """The environment-variable text that from_environ reads back as value."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, tuple):
            return ",".join(value)
        return str(value)


_MODULE_ITEM = "a dotted Python identifier path like 'django' or 'django.db.models'"

_SETTINGS: Tuple[_Setting, ...] = (
    _Setting(
        "lock_enabled", "DD_PROFILING_LOCK_ENABLED",
        "a bool (True or False)", _check_bool, _bool_from_text,
        env_allowed="a boolean (true/false, 1/0, yes/no or on/off)",
    ),
    _Setting(
        "capture_pct", "DD_PROFILING_CAPTURE_PCT",
        "a number between 0 and 100", _number_checker(0.0, 100.0, True), _float_from_text,
    ),
    _Setting(
        "max_frames", "DD_PROFILING_MAX_FRAMES",
        "an integer between 1 and 512", _int_checker(1, 512), _int_from_text,
    ),
    _Setting(
        "exclude_modules", "DD_PROFILING_LOCK_EXCLUDE_MODULES",
        "a comma-separated str or an iterable of str, each item " + _MODULE_ITEM,
        _check_modules, _text_as_is,
        env_allowed="a comma-separated list of module names",
    ),
    _Setting(
        "upload_interval", "DD_PROFILING_UPLOAD_INTERVAL",
        "a number of seconds greater than 0 and at most 86400",
        _number_checker(0.0, 86400.0, False), _float_from_text,
    ),
    _Setting(
        "output", "DD_PROFILING_OUTPUT_PPROF",
        "a non-empty path prefix (str or os.PathLike) without NUL characters",
        _check_output, _text_as_is,
        env_allowed="a non-empty path prefix without NUL characters",
    ),
    _Setting(
        "wait_sample_interval", "DD_PROFILING_LOCK_WAIT_SAMPLE_INTERVAL",
        "a duration from 1 ns to 60 s: an int of nanoseconds or a str such as '250us', "
        "'1.5ms' or '2s' (units ns, us, ms, s)",
        _check_duration_ns, _duration_from_text,
        env_allowed="a duration from 1 ns to 60 s: a number of nanoseconds, or a number with "
        "a unit ns, us, ms or s ('250us', '1.5ms')",
    ),
    _Setting(
        "ddtrace", "LOCKPROF_DDTRACE",
        "a bool (True or False)", _check_bool, _bool_from_text,
        env_allowed="a boolean (true/false, 1/0, yes/no or on/off)",
        in_config=False, default=False,
    ),
)

_CONFIG_SETTINGS: Tuple[_Setting, ...] = tuple(s for s in _SETTINGS if s.in_config)
_BY_NAME: Dict[str, _Setting] = {s.name: s for s in _CONFIG_SETTINGS}


def _warn(message: str) -> None:
    warnings.warn(message, LockprofConfigWarning, stacklevel=_stacklevel_outside_lockprof())


def _stacklevel_outside_lockprof() -> int:
    """The stacklevel, for a warnings.warn() made by our caller, of the first frame whose
    module is not lockprof (or a submodule): the user code that asked for the configuration."""
    try:
        frame = sys._getframe(1)
    except (AttributeError, ValueError):
        return 2
    level = 1
    while frame is not None:
        try:
            name = frame.f_globals.get("__name__")
        except Exception:
            name = None
        if not (isinstance(name, str) and (name == "lockprof" or name.startswith("lockprof."))):
            break
        frame = frame.f_back
        level += 1
    return level


def _default_output() -> str:
    return os.path.join(tempfile.gettempdir(), "lockprof", "lockprof")


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """Validated lockprof settings.

    Every constructor path validates: ``Config(...)`` and ``dataclasses.replace`` raise
    ``TypeError`` / ``ValueError`` for bad values and normalise good ones (ints to floats for
    numbers, ``exclude_modules`` to a tuple, ``~`` expanded in ``output``).  Use
    :meth:`from_env` to read the ``DD_PROFILING_*`` environment variables.
    """

    lock_enabled: bool = True
    capture_pct: float = 1.0  # percent of lock operations captured, in [0, 100]
    max_frames: int = 64  # stack frames kept per sample, in [1, 512]
    exclude_modules: Tuple[str, ...] = ()  # locks created in these modules are not profiled
    upload_interval: float = 60.0  # seconds between exports, in (0, 86400]
    output: str = field(default_factory=_default_output)  # <output>.<pid>.<seq>.pprof
    # Contended waits at least this long (ns) are captured, shorter ones in proportion (within
    # the capture budget, which may raise the interval in force).
    wait_sample_interval: int = 1_000_000

    def __post_init__(self) -> None:
        for setting in _CONFIG_SETTINGS:
            value = setting.from_argument(getattr(self, setting.name))
            object.__setattr__(self, setting.name, value)

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None, **overrides: Any) -> Config:
        """Settings from ``environ`` (default ``os.environ``), then from ``overrides``.

        A keyword argument that is not None wins over the environment (whose variable is then
        not read at all); None means "not given".  Bad keyword arguments raise TypeError or
        ValueError; bad environment values warn (LockprofConfigWarning) and use the default.
        """
        unknown = sorted(set(overrides) - set(_BY_NAME))
        if unknown:
            raise TypeError(
                "Config.from_env() got unexpected keyword argument(s) %s; expected some of %s"
                % (", ".join(map(repr, unknown)), ", ".join(_BY_NAME))
            )
        if environ is None:
            environ = os.environ
        defaults = _field_defaults()
        values: Dict[str, Any] = {}
        for setting in _CONFIG_SETTINGS:
            given = overrides.get(setting.name)
            if given is not None:
                values[setting.name] = given  # validated by __post_init__
                continue
            value = setting.from_environ(environ, defaults[setting.name])
            if value is not _UNSET:
                values[setting.name] = value
        return cls(**values)

    def to_environ(self) -> Dict[str, str]:
        """The DD_PROFILING_* variables that make from_env() return these settings (for child
        processes of `lockprof run --subprocesses`)."""
        return {s.env_var: s.to_text(getattr(self, s.name)) for s in _CONFIG_SETTINGS}


class SettingInfo(NamedTuple):
    name: str  # the Config field
    env_var: str
    allowed: str  # what the variable's text may be
    default: str  # the default, as the variable would give it


def settings() -> Tuple[SettingInfo, ...]:
    """What describes each setting to people (--help), in Config field order."""
    defaults = _field_defaults()
    return tuple(SettingInfo(s.name, s.env_var, s.env_allowed or s.allowed,
                             s.to_text(defaults[s.name])) for s in _CONFIG_SETTINGS)


def parse_setting(name: str, text: str) -> Any:
    """The value of setting `name` given as text, as in its environment variable.

    Raises ValueError saying what is allowed (for command-line options, which are strict:
    a partly valid module list is rejected whole).
    """
    if name not in _BY_NAME:
        raise ValueError("name must be one of %s, got %s" % (", ".join(_BY_NAME), _safe_repr(name)))
    return _BY_NAME[name].from_option(text)


def env_setting(name: str, environ: Optional[Mapping[str, str]] = None) -> Any:
    """The value of a setting that is read from the environment only (not a Config field):
    its variable's (default ``os.environ``), or its default; a bad value warns once."""
    setting = next((s for s in _SETTINGS if s.name == name and not s.in_config), None)
    if setting is None:
        raise ValueError("name must be one of %s, got %s"
                         % (", ".join(s.name for s in _SETTINGS if not s.in_config), _safe_repr(name)))
    value = setting.from_environ(os.environ if environ is None else environ, setting.default)
    return setting.default if value is _UNSET else value


def _field_defaults() -> Dict[str, Any]:
    defaults: Dict[str, Any] = {}
    for f in fields(Config):
        if f.default_factory is not MISSING:
            defaults[f.name] = f.default_factory()
        else:
            defaults[f.name] = f.default
    return defaults


if [f.name for f in fields(Config)] != [s.name for s in _CONFIG_SETTINGS]:  # pragma: no cover
    raise RuntimeError("lockprof.config: Config fields and _SETTINGS are out of sync")
