from __future__ import annotations

import sys
import types

import pytest

from lockprof.filters import ALWAYS_EXCLUDED, ModuleFilter, module_of_frame

# ------------------------------------------------------------------------------ ModuleFilter


@pytest.mark.parametrize(
    "module_name, excluded",
    [
        ("django", True),
        ("django.db", True),
        ("django.db.models", True),
        ("djangorestframework", False),
        ("djangorestframework.views", False),
        ("django_extensions", False),
        ("djang", False),
        ("mydjango", False),
        ("my.django", False),
        ("flask", True),
        ("flask.app", True),
        ("flasky", False),
        ("requests", False),
        ("__main__", False),
        ("", False),
    ],
)
def test_prefix_semantics(module_name, excluded):
    assert ModuleFilter(["django", "flask"]).excludes(module_name) is excluded


def test_dotted_exclusion_excludes_only_that_subtree():
    f = ModuleFilter(["django.db"])
    assert f.excludes("django.db")
    assert f.excludes("django.db.models")
    assert f.excludes("django.db.models.query")
    assert not f.excludes("django")
    assert not f.excludes("django.dbx")
    assert not f.excludes("django.http")


def test_always_excluded_list():
    assert ALWAYS_EXCLUDED == ("lockprof", "threading", "importlib._bootstrap")
    for name in ALWAYS_EXCLUDED:
        assert name in ModuleFilter.__doc__


@pytest.mark.parametrize(
    "module_name",
    ["lockprof", "lockprof.collector", "lockprof.config", "threading", "importlib._bootstrap"],
)
def test_builtin_exclusions_apply_without_configuration(module_name):
    assert ModuleFilter().excludes(module_name)
    assert ModuleFilter([]).excludes(module_name)
    assert ModuleFilter(["django"]).excludes(module_name)


@pytest.mark.parametrize(
    "module_name",
    [
        "lockprofx",
        "threadingx",
        "_threading_local",
        "importlib",
        "importlib._bootstrap_external",
        "importlib.util",
        "queue",
        "asyncio",
        "asyncio.locks",
        "concurrent.futures",
        "multiprocessing",
        "logging",
    ],
)
def test_only_the_documented_modules_are_built_in(module_name):
    assert not ModuleFilter().excludes(module_name)


def test_configured_names_can_extend_builtins():
    f = ModuleFilter(["logging", "concurrent.futures"])
    assert f.excludes("logging.handlers")
    assert f.excludes("concurrent.futures.thread")
    assert not f.excludes("concurrent")
    assert f.excludes("threading")


def test_names_property():
    f = ModuleFilter(["django", " flask ", ""])
    assert f.names == frozenset(ALWAYS_EXCLUDED) | {"django", "flask"}
    assert "ModuleFilter(['django', 'flask'])" == repr(f)


def test_none_and_non_string_are_not_excluded():
    f = ModuleFilter(["django"])
    assert f.excludes(None) is False
    assert f.excludes(None) is False  # cached path
    assert f.excludes(5) is False  # type: ignore[arg-type]
    assert f.excludes(["django"]) is False  # type: ignore[arg-type]  # unhashable
    assert f.excludes(b"django") is False  # type: ignore[arg-type]


def test_str_subclass_module_name():
    class Name(str):
        pass

    f = ModuleFilter(["django"])
    assert f.excludes(Name("django.db")) is True
    assert f.excludes(Name("djangox")) is False


def test_callable_alias():
    f = ModuleFilter(["django"])
    assert f("django.db") is True
    assert f("flask") is False


def test_accepts_any_iterable_of_names():
    assert ModuleFilter(n for n in ["django"]).excludes("django.db")
    assert ModuleFilter(("django",)).excludes("django")
    assert ModuleFilter({"django"}).excludes("django")


def test_rejects_a_single_string_and_non_string_names():
    with pytest.raises(TypeError, match="iterable of module names"):
        ModuleFilter("django")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be str"):
        ModuleFilter(["django", 3])  # type: ignore[list-item]


@pytest.mark.parametrize("size", [0, -1, True, 2.5])
def test_rejects_bad_cache_size(size):
    with pytest.raises(ValueError, match="cache_size"):
        ModuleFilter([], cache_size=size)


def test_results_are_cached():
    f = ModuleFilter(["django"])
    assert f.excludes("django.db.models") is True
    assert f.excludes("flask") is False
    assert f._cache == {"django.db.models": True, "flask": False}
    assert f.excludes("django.db.models") is True
    assert len(f._cache) == 2


def test_cache_is_bounded_by_default():
    f = ModuleFilter(["django"])
    for i in range(10000):
        name = "pkg%d.mod" % i
        assert f.excludes(name) is False
        assert len(f._cache) <= 4096
    for i in range(10000):
        assert f.excludes("django.sub%d" % i) is True
        assert len(f._cache) <= 4096
    # Correct answers survive clearing.
    assert f.excludes("django") is True
    assert f.excludes("djangorestframework") is False
    assert f.excludes("threading") is True


def test_cache_bound_is_configurable():
    f = ModuleFilter(["a"], cache_size=3)
    sizes = []
    for name in ["a", "b", "c", "d", "a.x", "e"]:
        f.excludes(name)
        sizes.append(len(f._cache))
    assert max(sizes) <= 3
    assert f.excludes("a.x") and not f.excludes("b")


def test_deep_module_names():
    f = ModuleFilter(["a.b.c"])
    assert f.excludes("a.b.c.d.e.f.g.h")
    assert not f.excludes("a.b.cd.e")
    assert not f.excludes("a.b")
    assert not f.excludes("x." * 200 + "y")


def test_works_with_config_exclude_modules():
    from lockprof.config import Config

    cfg = Config(exclude_modules="django, celery.worker")
    f = ModuleFilter(cfg.exclude_modules)
    assert f.excludes("celery.worker.consumer")
    assert not f.excludes("celery")


# --------------------------------------------------------------------------- module_of_frame


def test_module_of_real_frame():
    assert module_of_frame(sys._getframe()) == __name__


def test_module_of_frame_in_other_module():
    module = types.ModuleType("some.pkg.mod")
    exec("import sys\ndef here():\n    return sys._getframe()\n", module.__dict__)
    frame = module.here()
    assert module_of_frame(frame) == "some.pkg.mod"
    assert ModuleFilter(["some.pkg"]).excludes(module_of_frame(frame))


def test_module_of_frame_without_name_in_globals():
    namespace: dict = {"sys": sys}
    exec("frame = sys._getframe()", namespace)
    namespace.pop("__name__", None)
    assert module_of_frame(namespace["frame"]) is None
    assert ModuleFilter().excludes(module_of_frame(namespace["frame"])) is False


class FakeFrame:
    def __init__(self, f_globals):
        self.f_globals = f_globals


class RaisingGlobals:
    @property
    def f_globals(self):
        raise RuntimeError("boom")


class RaisingGet(dict):
    def get(self, *args):  # type: ignore[override]
        raise RuntimeError("boom")


class RaisingMapping:
    def get(self, key, default=None):
        raise KeyError(key)


class NameSubclass(str):
    pass


@pytest.mark.parametrize(
    "frame, expected",
    [
        (FakeFrame({"__name__": "pkg.mod"}), "pkg.mod"),
        (FakeFrame({}), None),
        (FakeFrame({"__name__": None}), None),
        (FakeFrame({"__name__": 5}), None),
        (FakeFrame({"__name__": b"pkg"}), None),
        (FakeFrame(types.MappingProxyType({"__name__": "proxied"})), "proxied"),
        (FakeFrame(RaisingGet(__name__="dictsub")), "dictsub"),
        (FakeFrame(RaisingMapping()), None),
        (FakeFrame(None), None),
        (FakeFrame(42), None),
        (FakeFrame([("__name__", "x")]), None),
        (RaisingGlobals(), None),
        (object(), None),
        (None, None),
    ],
)
def test_module_of_frame_never_raises(frame, expected):
    assert module_of_frame(frame) == expected


def test_module_of_frame_returns_plain_str():
    name = module_of_frame(FakeFrame({"__name__": NameSubclass("pkg.sub")}))
    assert name == "pkg.sub"
    assert type(name) is str
