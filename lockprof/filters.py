"""Which locks to profile, decided by the module that creates them.

Called once per lock creation, so :meth:`ModuleFilter.excludes` is cached per module name.
"""

from __future__ import annotations

from typing import Any, Dict, FrozenSet, Iterable, Optional, Tuple

__all__ = ["ALWAYS_EXCLUDED", "ModuleFilter", "module_of_frame"]

#: Modules (and their submodules) whose locks are never profiled, whatever the configuration.
ALWAYS_EXCLUDED: Tuple[str, ...] = (
    "lockprof",  # the profiler's own locks
    "threading",  # the locks inside Condition, Event, Semaphore, Thread, ...
    "importlib._bootstrap",  # the per-module import locks
)

_DEFAULT_CACHE_SIZE = 4096


class ModuleFilter:
    """Decides whether the locks created by a module are excluded from profiling.

    ``ModuleFilter(excluded)`` excludes each name in ``excluded`` and its submodules:
    ``"django"`` excludes ``django`` and ``django.db.models`` but not ``djangorestframework``.

    Always excluded, whatever ``excluded`` says (see ``ALWAYS_EXCLUDED``):

    * ``lockprof`` -- the profiler's own locks;
    * ``threading`` -- the locks ``threading`` creates internally (Condition, Event, ...);
    * ``importlib._bootstrap`` -- the module locks created during imports.

    Answers are cached per module name; the cache is cleared when it would exceed
    ``cache_size`` entries, so memory stays bounded however many modules create locks.
    """

    __slots__ = ("_names", "_cache", "_cache_size")

    def __init__(self, excluded: Iterable[str] = (), cache_size: int = _DEFAULT_CACHE_SIZE) -> None:
        if isinstance(excluded, (str, bytes)):
            raise TypeError(
                "ModuleFilter() takes an iterable of module names, not a single %s: "
                "use ModuleFilter([name])" % type(excluded).__name__
            )
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise ValueError("cache_size must be a positive integer, got %r" % (cache_size,))
        names = set(ALWAYS_EXCLUDED)
        for name in excluded:
            if not isinstance(name, str):
                raise TypeError(
                    "ModuleFilter() module names must be str, got %r (%s)"
                    % (name, type(name).__name__)
                )
            name = name.strip()
            if name:
                names.add(name)
        self._names: FrozenSet[str] = frozenset(names)
        self._cache: Dict[Any, bool] = {}
        self._cache_size = cache_size

    @property
    def names(self) -> FrozenSet[str]:
        """Every excluded name, built-in ones included."""
        return self._names

    def __repr__(self) -> str:
        return "ModuleFilter(%r)" % (sorted(self._names - set(ALWAYS_EXCLUDED)),)

    def excludes(self, module_name: Optional[str]) -> bool:
        """True when ``module_name`` is an excluded name or a submodule of one.

        None (code whose globals have no ``__name__``) and non-str values are not excluded.
        """
        cache = self._cache
        try:
            return cache[module_name]
        except KeyError:
            pass
        except TypeError:  # unhashable: not a module name
            return False
        result = self._compute(module_name)
        if len(cache) >= self._cache_size:
            cache.clear()
        cache[module_name] = result
        return result

    __call__ = excludes

    def _compute(self, module_name: Any) -> bool:
        if not isinstance(module_name, str):
            return False
        names = self._names
        if module_name in names:
            return True
        # Check each dotted prefix ("a", "a.b" for "a.b.c") against the set.
        dot = module_name.find(".")
        while dot != -1:
            if module_name[:dot] in names:
                return True
            dot = module_name.find(".", dot + 1)
        return False


def module_of_frame(frame: Any) -> Optional[str]:
    """``frame.f_globals["__name__"]`` if it is a str, else None.  Never raises."""
    try:
        globals_ = frame.f_globals
        if isinstance(globals_, dict):
            name = dict.get(globals_, "__name__")  # ignores overridden get/__missing__
        else:
            name = globals_.get("__name__")
    except Exception:
        return None
    if type(name) is str:
        return name
    if isinstance(name, str):
        try:
            return str.__str__(name)  # a plain str, whatever the subclass does
        except Exception:
            return None
    return None
