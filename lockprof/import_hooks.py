"""A sys.meta_path finder that runs code right after a module is imported: the collector's
(threading and asyncio imported again or after start()) and lockprof's start-up hook's (ddtrace's
profiler module). Plain Python, so that the start-up hook loads nothing of the compiled core."""

from __future__ import annotations

import sys
import weakref
from types import ModuleType
from typing import Any, Callable, Iterable


class PatchOnImport:
    """A sys.meta_path finder that runs `patch(module)` right after one of `names` is imported
    (asyncio imported after start(), threading imported or reloaded again), before the importer
    sees it. It holds the collector weakly: a module's spec keeps its loader for good."""

    def __init__(self, names: Iterable[str], patch: Callable[[ModuleType], None]) -> None:
        self._names = frozenset(names)
        self._patch = weakref.WeakMethod(patch)  # type: ignore[arg-type]

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in self._names:
            return None
        for finder in sys.meta_path:  # the others' answer, a new spec even for a reload
            find = getattr(finder, "find_spec", None)
            if finder is self or isinstance(finder, PatchOnImport) or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        spec.loader = _PatchingLoader(spec.loader, self._patch)
        return spec


class _PatchingLoader:
    def __init__(self, loader: Any, patch: "weakref.WeakMethod[Callable[[ModuleType], None]]") -> None:
        self._loader = loader
        self._patch = patch

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        patch = self._patch()
        if patch is not None:
            patch(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
