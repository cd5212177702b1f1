from __future__ import annotations

import dataclasses
import math
import os
import pathlib
import tempfile
import warnings
from decimal import Decimal
from fractions import Fraction

import pytest

from lockprof import config as config_module
from lockprof.config import Config, LockprofConfigWarning

ENABLED = "DD_PROFILING_LOCK_ENABLED"
PCT = "DD_PROFILING_CAPTURE_PCT"
FRAMES = "DD_PROFILING_MAX_FRAMES"
EXCLUDE = "DD_PROFILING_LOCK_EXCLUDE_MODULES"
INTERVAL = "DD_PROFILING_UPLOAD_INTERVAL"
OUTPUT = "DD_PROFILING_OUTPUT_PPROF"
WAIT_INTERVAL = "DD_PROFILING_LOCK_WAIT_SAMPLE_INTERVAL"

ALL_VARS = {
    ENABLED: "lock_enabled",
    PCT: "capture_pct",
    FRAMES: "max_frames",
    EXCLUDE: "exclude_modules",
    INTERVAL: "upload_interval",
    OUTPUT: "output",
    WAIT_INTERVAL: "wait_sample_interval",
}

DEFAULT_OUTPUT = os.path.join(tempfile.gettempdir(), "lockprof", "lockprof")
DEFAULTS = {
    "lock_enabled": True,
    "capture_pct": 1.0,
    "max_frames": 64,
    "exclude_modules": (),
    "upload_interval": 60.0,
    "output": DEFAULT_OUTPUT,
    "wait_sample_interval": 1_000_000,
}


def short_id(value):
    """A pytest id that stays short and never fails (ints > 4300 digits, long strings)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return "int_%d_bits" % value.bit_length()
    text = repr(value)
    return text if len(text) <= 40 else text[:20] + "..%d_chars" % len(text)


def load(environ, **overrides):
    """Config.from_env(environ, **overrides) and the LockprofConfigWarnings it emitted."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = Config.from_env(environ, **overrides)
    ours = [w for w in caught if issubclass(w.category, LockprofConfigWarning)]
    assert len(ours) == len(caught), [str(w.message) for w in caught]
    return cfg, [str(w.message) for w in ours]


def load_quiet(environ, **overrides):
    cfg, messages = load(environ, **overrides)
    assert messages == []
    return cfg


def assert_defaults_except(cfg, **expected):
    for name, default in DEFAULTS.items():
        assert getattr(cfg, name) == expected.get(name, default), name


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch):
    for var in ALL_VARS:
        monkeypatch.delenv(var, raising=False)


# ---------------------------------------------------------------------------------- defaults


def test_defaults():
    cfg = Config()
    assert_defaults_except(cfg)
    assert type(cfg.capture_pct) is float and type(cfg.upload_interval) is float
    assert type(cfg.max_frames) is int and type(cfg.lock_enabled) is bool


def test_from_env_empty_mapping_gives_defaults():
    assert load_quiet({}) == Config()


def test_from_env_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv(PCT, "12.5")
    monkeypatch.setenv(ENABLED, "off")
    cfg = Config.from_env()
    assert cfg.capture_pct == 12.5
    assert cfg.lock_enabled is False


def test_unrelated_env_vars_are_ignored():
    assert load_quiet({"DD_PROFILING_SOMETHING_ELSE": "x", "PATH": "/bin"}) == Config()


def test_config_is_frozen():
    cfg = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.capture_pct = 5.0  # type: ignore[misc]


def test_settings_table_matches_fields():
    names = [f.name for f in dataclasses.fields(Config)]
    assert [s.name for s in config_module._CONFIG_SETTINGS] == names
    assert {s.env_var: s.name for s in config_module._CONFIG_SETTINGS} == ALL_VARS


def test_warning_class():
    assert issubclass(LockprofConfigWarning, UserWarning)


# ----------------------------------------------------------------------- environment: good


@pytest.mark.parametrize(
    "text, expected",
    [
        ("true", True), ("TRUE", True), ("True", True), ("1", True), ("yes", True),
        ("YeS", True), ("on", True), ("ON", True), ("  true\t", True), ("\non\n", True),
        ("false", False), ("FALSE", False), ("0", False), ("no", False), ("No", False),
        ("off", False), ("OFF", False), (" off ", False),
    ],
)
def test_env_lock_enabled_good(text, expected):
    cfg = load_quiet({ENABLED: text})
    assert cfg.lock_enabled is expected
    assert_defaults_except(cfg, lock_enabled=expected)


@pytest.mark.parametrize(
    "text, expected",
    [("0", 0.0), ("100", 100.0), ("50.5", 50.5), (" 5 ", 5.0), ("1e1", 10.0), ("0.001", 0.001),
     ("100.0", 100.0), ("-0", 0.0), ("+7", 7.0)],
)
def test_env_capture_pct_good(text, expected):
    cfg = load_quiet({PCT: text})
    assert cfg.capture_pct == expected
    assert type(cfg.capture_pct) is float
    assert_defaults_except(cfg, capture_pct=expected)


@pytest.mark.parametrize(
    "text, expected", [("1", 1), ("512", 512), (" 32 ", 32), ("+8", 8), ("064", 64)]
)
def test_env_max_frames_good(text, expected):
    cfg = load_quiet({FRAMES: text})
    assert cfg.max_frames == expected and type(cfg.max_frames) is int
    assert_defaults_except(cfg, max_frames=expected)


@pytest.mark.parametrize(
    "text, expected",
    [("0.5", 0.5), ("86400", 86400.0), (" 30 ", 30.0), ("1e-3", 0.001), ("60", 60.0)],
)
def test_env_upload_interval_good(text, expected):
    cfg = load_quiet({INTERVAL: text})
    assert cfg.upload_interval == expected and type(cfg.upload_interval) is float
    assert_defaults_except(cfg, upload_interval=expected)


@pytest.mark.parametrize(
    "text, expected",
    [("1000", 1000), ("1", 1), ("250us", 250_000), ("250µs", 250_000), ("2 ms", 2_000_000),
     ("1.5ms", 1_500_000), (".5s", 500_000_000), ("60s", 60 * 10**9), ("1e3us", 1_000_000),
     ("100ns", 100)],
)
def test_env_wait_sample_interval_good(text, expected):
    cfg = load_quiet({WAIT_INTERVAL: text})
    assert cfg.wait_sample_interval == expected and type(cfg.wait_sample_interval) is int
    assert_defaults_except(cfg, wait_sample_interval=expected)


@pytest.mark.parametrize("text", ["abc", "0", "-1ms", "61s", "1h", "1 m s", "ms", "nan", "inf",
                                  "1e400", "0.2ns", "1,000"])
def test_env_wait_sample_interval_bad_warns_once(text):
    cfg, messages = load({WAIT_INTERVAL: text})
    assert cfg.wait_sample_interval == 1_000_000
    assert len(messages) == 1
    assert messages[0].startswith(f"{WAIT_INTERVAL}={text!r} is not a duration")
    assert messages[0].endswith("using the default 1000000")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("django", ("django",)),
        ("django,flask", ("django", "flask")),
        (" django , django.db.models ,flask ", ("django", "django.db.models", "flask")),
        ("django,,flask,", ("django", "flask")),
        (",django", ("django",)),
        ("a.b.c,_private,Mod2", ("a.b.c", "_private", "Mod2")),
        ("django,django", ("django",)),
        (", , ,", ()),
    ],
)
def test_env_exclude_modules_good(text, expected):
    cfg = load_quiet({EXCLUDE: text})
    assert cfg.exclude_modules == expected
    assert type(cfg.exclude_modules) is tuple
    assert_defaults_except(cfg, exclude_modules=expected)


def test_env_output_good():
    assert load_quiet({OUTPUT: "/var/tmp/prof/app"}).output == "/var/tmp/prof/app"
    assert load_quiet({OUTPUT: "  /var/tmp/prof/app \n"}).output == "/var/tmp/prof/app"
    assert load_quiet({OUTPUT: "relative/prefix"}).output == "relative/prefix"


def test_env_output_expands_user(monkeypatch):
    monkeypatch.setenv("HOME", "/home/tester")
    assert load_quiet({OUTPUT: "~/prof/app"}).output == "/home/tester/prof/app"


# --------------------------------------------------------------- environment: empty / unset


@pytest.mark.parametrize("var", sorted(ALL_VARS))
@pytest.mark.parametrize("text", ["", " ", "   ", "\t", "\n", " \t\r\n "])
def test_env_empty_or_whitespace_is_unset(var, text):
    assert load_quiet({var: text}) == Config()


@pytest.mark.parametrize("var", sorted(ALL_VARS))
def test_env_none_value_is_unset(var):
    assert load_quiet({var: None}) == Config()


# ------------------------------------------------------------------------ environment: bad

HUGE_DIGITS = "9" * 5000  # more digits than int() accepts by default on 3.11+

BAD_ENV = {
    ENABLED: ["maybe", "2", "-1", "nan", "inf", "truee", "y", "t", "enabled", "1.0", HUGE_DIGITS],
    PCT: ["abc", "-1", "-0.001", "100.0001", "101", "nan", "NaN", "-nan", "inf", "-inf",
          "Infinity", "1e400", "-1e400", "9" * 400, HUGE_DIGITS, "1,5", "0x10", "true", "5%"],
    FRAMES: ["0", "513", "-1", "-64", "2.5", "64.0", "1e3", "nan", "inf", "-inf", "abc",
             "true", "0x40", "99999999999999999999", HUGE_DIGITS],
    INTERVAL: ["0", "-0", "0.0", "-5", "86400.1", "86401", "nan", "inf", "-inf", "1e400",
               "9" * 400, HUGE_DIGITS, "abc", "60s", "1 minute"],
    OUTPUT: ["a\0b", "/tmp/x\0"],
}
BAD_ENV_CASES = [(var, text) for var, texts in BAD_ENV.items() for text in texts]


@pytest.mark.parametrize("var, text", BAD_ENV_CASES, ids=short_id)
def test_env_bad_value_warns_once_and_uses_default(var, text):
    cfg, messages = load({var: text})
    assert cfg == Config()
    assert len(messages) == 1
    message = messages[0]
    assert message.startswith(var + "=")
    shown = repr(text)
    assert shown[:150] in message  # long values are abbreviated
    default = DEFAULTS[ALL_VARS[var]]
    assert message.endswith("; using the default %r" % (default,))


def test_env_bad_message_exact_format():
    _, messages = load({PCT: "abc"})
    assert messages == [
        "DD_PROFILING_CAPTURE_PCT='abc' is not a number between 0 and 100; using the default 1.0"
    ]
    _, messages = load({FRAMES: "2.5"})
    assert messages == [
        "DD_PROFILING_MAX_FRAMES='2.5' is not an integer between 1 and 512; "
        "using the default 64"
    ]
    _, messages = load({ENABLED: "maybe"})
    assert len(messages) == 1
    assert messages[0].startswith("DD_PROFILING_LOCK_ENABLED='maybe' is not a boolean")
    assert "true/false" in messages[0] and "yes/no" in messages[0] and "on/off" in messages[0]
    assert messages[0].endswith("using the default True")
    _, messages = load({INTERVAL: "-5"})
    assert messages[0].startswith("DD_PROFILING_UPLOAD_INTERVAL='-5' is not a number of seconds")
    assert "86400" in messages[0] and messages[0].endswith("using the default 60.0")


def test_env_bad_value_is_shown_unstripped():
    _, messages = load({PCT: "  abc "})
    assert messages[0].startswith("DD_PROFILING_CAPTURE_PCT='  abc ' is not")


def test_env_long_bad_value_is_abbreviated():
    _, messages = load({FRAMES: HUGE_DIGITS})
    assert len(messages) == 1
    assert len(messages[0]) < 500
    assert messages[0].endswith("using the default 64")


@pytest.mark.parametrize("var", sorted(ALL_VARS))
@pytest.mark.parametrize("value", [5, 2.5, True, b"1", ["django"], object()])
def test_env_non_string_value_warns_once_and_uses_default(var, value):
    cfg, messages = load({var: value})
    assert cfg == Config()
    assert len(messages) == 1
    assert messages[0].startswith(var + "=")
    assert "not a string" in messages[0]
    assert messages[0].endswith("using the default %r" % (DEFAULTS[ALL_VARS[var]],))


def test_env_every_variable_bad_gives_exactly_one_warning_each():
    environ = {
        ENABLED: "maybe",
        PCT: "nan",
        FRAMES: "0",
        EXCLUDE: "1bad",
        INTERVAL: "inf",
        OUTPUT: "a\0b",
        WAIT_INTERVAL: "1 hour",
    }
    cfg, messages = load(environ)
    assert cfg == Config()
    assert len(messages) == len(ALL_VARS)
    for var in ALL_VARS:
        assert sum(m.startswith(var + "=") for m in messages) == 1, var


def test_env_bad_variables_do_not_affect_good_ones():
    cfg, messages = load({PCT: "abc", FRAMES: "16", ENABLED: "no", INTERVAL: "-1"})
    assert cfg.capture_pct == 1.0 and cfg.upload_interval == 60.0
    assert cfg.max_frames == 16 and cfg.lock_enabled is False
    assert len(messages) == 2


def test_env_exclude_modules_invalid_items_dropped_with_one_warning():
    text = "django, 1bad, foo-bar ,django.db.models, a..b, .x, y."
    cfg, messages = load({EXCLUDE: text})
    assert cfg.exclude_modules == ("django", "django.db.models")
    assert len(messages) == 1
    message = messages[0]
    assert message.startswith("DD_PROFILING_LOCK_EXCLUDE_MODULES=%r" % text)
    for bad in ("'1bad'", "'foo-bar'", "'a..b'", "'.x'", "'y.'"):
        assert bad in message
    named = message.split("contains invalid module name(s) ")[1].split(" (each must be")[0]
    assert named == "'1bad', 'foo-bar', 'a..b', '.x', 'y.'"
    assert message.endswith("using ('django', 'django.db.models')")


def test_env_exclude_modules_all_invalid_uses_default():
    cfg, messages = load({EXCLUDE: "foo-bar, 3d"})
    assert cfg.exclude_modules == ()
    assert len(messages) == 1
    assert "'foo-bar'" in messages[0] and "'3d'" in messages[0]
    assert messages[0].endswith("using ()")


def test_env_warning_points_outside_lockprof():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Config.from_env({PCT: "abc"})
    assert len(caught) == 1
    assert caught[0].category is LockprofConfigWarning
    assert os.path.normcase(caught[0].filename) == os.path.normcase(__file__)


def test_env_warning_default_filter_does_not_raise():
    # Under the default warning filters a bad environment never raises.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert Config.from_env({PCT: "abc", FRAMES: "x"}) == Config()


# ------------------------------------------------------------------ explicit arguments: good


def test_explicit_arguments_win_over_env():
    environ = {
        ENABLED: "true",
        PCT: "50",
        FRAMES: "32",
        EXCLUDE: "django",
        INTERVAL: "10",
        OUTPUT: "/env/prefix",
    }
    cfg = load_quiet(
        environ,
        lock_enabled=False,
        capture_pct=2,
        max_frames=8,
        exclude_modules=["flask"],
        upload_interval=5,
        output="/arg/prefix",
    )
    assert cfg == Config(False, 2.0, 8, ("flask",), 5.0, "/arg/prefix")


def test_explicit_argument_skips_bad_env_variable():
    cfg = load_quiet({PCT: "abc", FRAMES: "nope"}, capture_pct=3.5, max_frames=10)
    assert cfg.capture_pct == 3.5 and cfg.max_frames == 10


def test_explicit_none_means_not_given():
    environ = {PCT: "50", FRAMES: "32", ENABLED: "off", EXCLUDE: "a", INTERVAL: "9",
               OUTPUT: "/env/p"}
    cfg = load_quiet(
        environ,
        lock_enabled=None,
        capture_pct=None,
        max_frames=None,
        exclude_modules=None,
        upload_interval=None,
        output=None,
    )
    assert cfg == Config(False, 50.0, 32, ("a",), 9.0, "/env/p")
    assert load_quiet({}, capture_pct=None) == Config()


def test_explicit_none_with_bad_env_still_warns():
    cfg, messages = load({PCT: "abc"}, capture_pct=None)
    assert cfg.capture_pct == 1.0
    assert len(messages) == 1


def test_explicit_false_and_zero_are_given():
    cfg = load_quiet({ENABLED: "on", PCT: "50"}, lock_enabled=False, capture_pct=0)
    assert cfg.lock_enabled is False
    assert cfg.capture_pct == 0.0


def test_explicit_empty_exclude_overrides_env():
    assert load_quiet({EXCLUDE: "django"}, exclude_modules=()).exclude_modules == ()
    assert load_quiet({EXCLUDE: "django"}, exclude_modules="").exclude_modules == ()


@pytest.mark.parametrize(
    "kwargs, name, expected",
    [
        ({"capture_pct": 5}, "capture_pct", 5.0),
        ({"capture_pct": 0}, "capture_pct", 0.0),
        ({"capture_pct": 100}, "capture_pct", 100.0),
        ({"capture_pct": Fraction(1, 2)}, "capture_pct", 0.5),
        ({"upload_interval": 1}, "upload_interval", 1.0),
        ({"upload_interval": 86400}, "upload_interval", 86400.0),
        ({"upload_interval": 1e-6}, "upload_interval", 1e-6),
        ({"max_frames": 1}, "max_frames", 1),
        ({"max_frames": 512}, "max_frames", 512),
        ({"lock_enabled": False}, "lock_enabled", False),
        ({"exclude_modules": "django, flask"}, "exclude_modules", ("django", "flask")),
        ({"exclude_modules": ["django", " flask "]}, "exclude_modules", ("django", "flask")),
        ({"exclude_modules": ("a.b",)}, "exclude_modules", ("a.b",)),
        ({"exclude_modules": {"only"}}, "exclude_modules", ("only",)),
        ({"exclude_modules": (m for m in ["x", "y", "x"])}, "exclude_modules", ("x", "y")),
        ({"exclude_modules": ["a", "", " "]}, "exclude_modules", ("a",)),
        ({"output": "/tmp/p"}, "output", "/tmp/p"),
        ({"wait_sample_interval": 1}, "wait_sample_interval", 1),
        ({"wait_sample_interval": 60 * 10**9}, "wait_sample_interval", 60 * 10**9),
        ({"wait_sample_interval": "250us"}, "wait_sample_interval", 250_000),
        ({"wait_sample_interval": " 1.5 ms "}, "wait_sample_interval", 1_500_000),
        ({"output": pathlib.PurePosixPath("/tmp/p")}, "output", "/tmp/p"),
    ],
)
def test_explicit_good_values_are_normalised(kwargs, name, expected):
    cfg = load_quiet({}, **kwargs)
    assert getattr(cfg, name) == expected
    assert type(getattr(cfg, name)) is type(expected)
    # Config() validates and normalises the same way.
    if name != "exclude_modules" or not hasattr(kwargs[name], "__next__"):
        assert getattr(Config(**kwargs), name) == expected


def test_explicit_output_expands_user(monkeypatch):
    monkeypatch.setenv("HOME", "/home/tester")
    assert Config.from_env({}, output="~/x/y").output == "/home/tester/x/y"
    assert Config(output="~/x/y").output == "/home/tester/x/y"


# ------------------------------------------------------------------- explicit arguments: bad

TYPE_ERRORS = [
    ("lock_enabled", "yes"),
    ("lock_enabled", "true"),
    ("lock_enabled", 1),
    ("lock_enabled", 0),
    ("lock_enabled", 1.0),
    ("capture_pct", "5"),
    ("capture_pct", True),
    ("capture_pct", False),
    ("capture_pct", Decimal("5")),
    ("capture_pct", complex(1, 0)),
    ("capture_pct", [5]),
    ("max_frames", 2.5),
    ("max_frames", 64.0),
    ("max_frames", "64"),
    ("max_frames", True),
    ("max_frames", Fraction(64, 1)),
    ("upload_interval", "60"),
    ("upload_interval", False),
    ("upload_interval", [1]),
    ("exclude_modules", 5),
    ("exclude_modules", b"django"),
    ("exclude_modules", [1]),
    ("exclude_modules", ["django", None]),
    ("exclude_modules", [b"django"]),
    ("output", 5),
    ("output", b"/tmp/x"),
    ("output", ["/tmp/x"]),
    ("wait_sample_interval", 1.5),
    ("wait_sample_interval", True),
    ("wait_sample_interval", b"1ms"),
    ("wait_sample_interval", Decimal("1000")),
]


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_config_constructor_rejects_none(name):
    # None means "not given" only for from_env(); Config(x=None) is a wrong type.
    with pytest.raises(TypeError, match="^" + name + " must be"):
        Config(**{name: None})


VALUE_ERRORS = [
    ("capture_pct", 150),
    ("capture_pct", 100.0001),
    ("capture_pct", -1),
    ("capture_pct", -0.5),
    ("capture_pct", math.nan),
    ("capture_pct", math.inf),
    ("capture_pct", -math.inf),
    ("capture_pct", 10 ** 400),
    ("max_frames", 0),
    ("max_frames", 513),
    ("max_frames", -1),
    ("max_frames", 10 ** 5000),
    ("upload_interval", 0),
    ("upload_interval", 0.0),
    ("upload_interval", -1),
    ("upload_interval", 86400.5),
    ("upload_interval", math.nan),
    ("upload_interval", math.inf),
    ("upload_interval", 10 ** 400),
    ("exclude_modules", "1bad"),
    ("exclude_modules", "django, foo-bar"),
    ("exclude_modules", ["django", "a..b"]),
    ("exclude_modules", [".django"]),
    ("exclude_modules", ["django."]),
    ("exclude_modules", ["with space"]),
    ("output", ""),
    ("output", "   "),
    ("output", "a\0b"),
    ("wait_sample_interval", 0),
    ("wait_sample_interval", -5),
    ("wait_sample_interval", 60 * 10**9 + 1),
    ("wait_sample_interval", "1h"),
    ("wait_sample_interval", "-1ms"),
    ("wait_sample_interval", "0.1ns"),
    ("wait_sample_interval", "ms"),
    ("wait_sample_interval", "1e400s"),
    ("wait_sample_interval", "nan"),
]


BAD_ARGUMENTS = [(name, value, TypeError) for name, value in TYPE_ERRORS] + [
    (name, value, ValueError) for name, value in VALUE_ERRORS
]


@pytest.mark.parametrize("name, value, error", BAD_ARGUMENTS, ids=short_id)
def test_explicit_bad_argument_raises_naming_it(name, value, error):
    """A wrong type raises TypeError, a bad value ValueError; the message names the argument."""
    with pytest.raises(error) as info:
        Config.from_env({}, **{name: value})
    assert type(info.value) is error
    message = str(info.value)
    assert message.startswith(name + " must be ")
    assert ", got " in message
    with pytest.raises(error):
        Config(**{name: value})


def test_explicit_error_message_exact():
    with pytest.raises(ValueError) as info:
        Config.from_env({}, capture_pct=150)
    assert str(info.value) == "capture_pct must be a number between 0 and 100, got 150"
    with pytest.raises(TypeError) as info:
        Config.from_env({}, capture_pct="5")
    assert str(info.value) == "capture_pct must be a number between 0 and 100, got '5' (str)"
    with pytest.raises(TypeError) as info:
        Config.from_env({}, max_frames=2.5)
    assert str(info.value) == "max_frames must be an integer between 1 and 512, got 2.5 (float)"
    with pytest.raises(TypeError) as info:
        Config.from_env({}, lock_enabled="yes")
    assert str(info.value) == "lock_enabled must be a bool (True or False), got 'yes' (str)"
    with pytest.raises(ValueError) as info:
        Config.from_env({}, upload_interval=0)
    assert "upload_interval must be a number of seconds greater than 0 and at most 86400" in str(
        info.value
    )


def test_explicit_exclude_error_names_bad_items():
    with pytest.raises(ValueError) as info:
        Config.from_env({}, exclude_modules=["django", "foo-bar", "2x"])
    message = str(info.value)
    assert message.startswith("exclude_modules must be ")
    assert "'foo-bar'" in message and "'2x'" in message
    with pytest.raises(TypeError) as info:
        Config.from_env({}, exclude_modules=["django", 3])
    assert str(info.value).startswith("exclude_modules must be ")
    assert "3 (int)" in str(info.value)


def test_explicit_huge_int_message_does_not_fail():
    with pytest.raises(ValueError) as info:
        Config(max_frames=10 ** 5000)
    assert str(info.value).startswith("max_frames must be an integer between 1 and 512, got ")
    assert len(str(info.value)) < 500


def test_explicit_bad_argument_raises_even_with_good_env():
    with pytest.raises(ValueError):
        Config.from_env({PCT: "5"}, capture_pct=-1)


def test_unknown_keyword_argument():
    with pytest.raises(TypeError, match="capture_percent"):
        Config.from_env({}, capture_percent=5)


def test_replace_validates():
    cfg = Config()
    assert dataclasses.replace(cfg, max_frames=10).max_frames == 10
    with pytest.raises(ValueError, match="^max_frames must be"):
        dataclasses.replace(cfg, max_frames=0)


def test_config_equality_and_hash():
    assert Config(exclude_modules=["a"]) == Config(exclude_modules=("a",))
    assert hash(Config(exclude_modules="a")) == hash(Config(exclude_modules=["a"]))


# --- settings as text: command-line options and child processes' environment -----------------


def test_settings_lists_every_field_with_its_variable():
    listed = config_module.settings()
    assert [(s.name, s.env_var) for s in listed] == [(field, var) for var, field in ALL_VARS.items()]
    assert {s.name: s.default for s in listed} == {
        "lock_enabled": "true", "capture_pct": "1.0", "max_frames": "64", "exclude_modules": "",
        "upload_interval": "60.0", "output": DEFAULT_OUTPUT, "wait_sample_interval": "1000000"}


@pytest.mark.parametrize("name,text,value", [
    ("lock_enabled", "off", False), ("capture_pct", " 12.5 ", 12.5), ("max_frames", "3", 3),
    ("exclude_modules", "a, b.c,,a", ("a", "b.c")), ("upload_interval", "0.5", 0.5),
    ("output", "~/x", os.path.expanduser("~/x")), ("wait_sample_interval", "1.5ms", 1_500_000),
])
def test_parse_setting(name, text, value):
    assert config_module.parse_setting(name, text) == value


@pytest.mark.parametrize("name,text,message", [
    ("lock_enabled", "maybe", "must be a boolean (true/false, 1/0, yes/no or on/off), got 'maybe'"),
    ("capture_pct", "101", "must be a number between 0 and 100, got '101'"),
    ("max_frames", "1.5", "must be an integer between 1 and 512, got '1.5'"),
    ("exclude_modules", "ok,not-ok", "got invalid module name(s) 'not-ok'"),  # rejected whole
    ("output", " ", "must be a non-empty path prefix"),
    ("wait_sample_interval", "2min", "must be a duration from 1 ns to 60 s: a number of nanoseconds"),
    ("colour", "red", "name must be one of lock_enabled, capture_pct"),
])
def test_parse_setting_rejects_bad_text_saying_what_is_allowed(name, text, message):
    with pytest.raises(ValueError) as info:
        config_module.parse_setting(name, text)
    assert message in str(info.value)


@pytest.mark.parametrize("config", [
    Config(),
    Config(lock_enabled=False, capture_pct=0.1 + 0.2, max_frames=512, exclude_modules="a,b.c",
           upload_interval=1e-3, output="/tmp/out dir/p", wait_sample_interval="250us"),
])
def test_to_environ_round_trips(config):
    environ = config.to_environ()
    assert set(environ) == set(ALL_VARS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every value must read back cleanly
        assert Config.from_env(environ) == config
