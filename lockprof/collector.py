"""The lock collector: patches the lock classes of threading and asyncio while it runs.

It implements the collector protocol a host profiler drives (see docs/collector-protocol.md):
start(), stop() and snapshot(). The compiled core does the per-operation work; this module only
installs and removes the factories and profiled classes and turns the core's raw counts into a
Snapshot.
"""

from __future__ import annotations

import _thread
import importlib
import sys
import threading
import time
import weakref
from types import ModuleType
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from lockprof import _resolve
from lockprof._kinds import ASYNCIO_CONDITION, FACTORY_KINDS, PATCHED
from lockprof._lock import LockFactory, original_thread_attribute
from lockprof._primitives import ProfiledClass, original_class, profiled_class
from lockprof._recorder import EventCounts, LockContention, LongWaitRecord, Recorder
from lockprof._sampler import CaptureSampler
from lockprof.config import Config
from lockprof.filters import ModuleFilter
from lockprof.forking import call_after_fork_in_child
from lockprof.import_hooks import PatchOnImport
from lockprof.profile import Frame, LockSample, LockTotals, LongWait, Snapshot

# The most distinct (lock, stack, thread, task) keys kept between two snapshots; events for
# further keys are counted as dropped. About 1 KiB per key at 64 frames.
DEFAULT_MAX_ENTRIES = 4096
MAX_ENTRIES_LIMIT = 1 << 24  # about 16 GiB of keys at 64 frames: far beyond any useful table


class LockCollector:
    """Profiles the threading locks a program creates while the collector runs.

    Locks created before start() stay native. Locks created while it runs keep working after
    stop() at native speed (a flag the compiled core checks), and are profiled again if the
    collector starts again. start() and stop() are idempotent and thread-safe.
    """

    def __init__(
        self,
        capture_pct: float = 1.0,
        max_frames: int = 64,
        exclude_modules: Iterable[str] = (),
        max_entries: int = DEFAULT_MAX_ENTRIES,
        wait_sample_interval: Union[int, str] = Config.wait_sample_interval,
    ) -> None:
        # Config validates arguments once for the whole project (TypeError / ValueError).
        config = Config(capture_pct=capture_pct, max_frames=max_frames,
                        exclude_modules=exclude_modules,
                        wait_sample_interval=wait_sample_interval)
        if isinstance(max_entries, bool) or not isinstance(max_entries, int):
            raise TypeError(f"max_entries must be an integer from 1 to {MAX_ENTRIES_LIMIT}, "
                            f"got {type(max_entries).__name__}")
        if not 1 <= max_entries <= MAX_ENTRIES_LIMIT:
            raise ValueError(f"max_entries must be an integer from 1 to {MAX_ENTRIES_LIMIT}, "
                             f"got {max_entries!r}")
        self.capture_pct = config.capture_pct
        self.max_frames = config.max_frames
        self.exclude_modules = config.exclude_modules
        self.wait_sample_interval = config.wait_sample_interval
        self._recorder = Recorder(CaptureSampler(config.capture_pct), config.max_frames, max_entries,
                                  config.wait_sample_interval)
        self._filter = ModuleFilter(config.exclude_modules)
        self._state_lock = _thread.allocate_lock()  # always native: the profiler's own lock
        # (module, attribute, what it held before, what we installed), in patch order.
        self._patches: List[Tuple[ModuleType, str, Any, Any]] = []
        # The profiled classes made so far, by (module, attribute): (the asyncio.Lock class an
        # asyncio.Condition's was made with, the class). Installed again at the next start.
        self._classes: Dict[Tuple[str, str], List[Tuple[Any, type]]] = {}
        self._import_hook: Optional[PatchOnImport] = None
        self._gevent_listener: Optional[_GeventPatchListener] = None
        self._period_start_ns = time.time_ns()
        self._thread_names: Dict[int, str] = {}

    @property
    def running(self) -> bool:
        return self._recorder.active

    def start(self) -> None:
        """Make threading's and asyncio's lock classes create profiled locks (asyncio's when it
        is imported, if it is not yet)."""
        with self._state_lock:
            if self._recorder.active:
                return
            self._recorder.active = True
            try:
                self._import_hook = PatchOnImport([*PATCHED, _GEVENT_EVENTS], self._patch_imported)
                sys.meta_path.insert(0, self._import_hook)
                if _GEVENT_EVENTS in sys.modules:
                    self._listen_for_gevent(sys.modules[_GEVENT_EVENTS])
                for name in PATCHED:
                    module = sys.modules.get(name)
                    if module is None:
                        continue
                    if _initializing(module):
                        # Imported right now by another thread: its names are not all there
                        # yet, and the import hook came too late for it.
                        _patch_once_imported(module, self._patch_imported)
                    else:
                        self._patch(module)
            except BaseException:
                self._unpatch()
                raise
            self._period_start_ns = time.time_ns()
            call_after_fork_in_child(self)

    def _patch(self, module: ModuleType) -> None:
        """Patch the attributes of module that do not hold this collector's replacement."""
        installed: Dict[str, Any] = {attribute: replacement for patched, attribute, _, replacement
                                     in self._patches if patched is module}
        for attribute, kind in PATCHED[module.__name__]:
            if attribute in installed:
                continue
            original = getattr(module, attribute, None)
            if kind in FACTORY_KINDS:
                if original is None:
                    continue
                replacement = LockFactory(original, kind, self._recorder, self._filter.excludes)
            elif isinstance(original, type):
                replacement = self._profiled_class(module.__name__, attribute, kind, original,
                                                   installed.get("Lock") if kind == ASYNCIO_CONDITION else None)
                replacement._lp_replaced = original
            else:
                continue  # replaced by something that is not a class: left as it is
            installed[attribute] = replacement
            self._patches.append((module, attribute, original, replacement))
            setattr(module, attribute, replacement)

    def _profiled_class(self, module: str, attribute: str, kind: str, original: type, lock_class: Any) -> type:
        """The class to install over original: one this collector made at an earlier start for
        the same standard class (and asyncio.Lock class) if one is not among what original
        replaced, else a new one. A class per start was memory lost at every start on
        free-threaded 3.13, where a class made once a thread has started is immortal. A class of
        this collector stays below the installed one only while it is under the class of another
        collector that still runs (stopped out of order), so a few serve every start."""
        base = original_class(original)
        made = [(made_with, cls) for made_with, cls in self._classes.get((module, attribute), ())
                if vars(cls)["_lp_original"] is base]  # the others were made before a reload
        below = _replaced_chain(original)
        for made_with, cls in made:
            if made_with is lock_class and not any(cls is obj for obj in below):
                break
        else:
            cls = profiled_class(original, kind, self._recorder, self._filter.excludes, lock_class=lock_class)
            made.append((lock_class, cls))
        self._classes[module, attribute] = made
        return cls

    def _patch_imported(self, module: ModuleType) -> None:
        """A patched module imported again or reloaded while running, or patched over by
        gevent: patch the names that no longer hold this collector's replacements."""
        with self._state_lock:
            if not self._recorder.active:
                return
            if module.__name__ == _GEVENT_EVENTS:
                self._listen_for_gevent(module)
                return
            # A reload runs the module again in the same object: its names hold new originals.
            self._patches = [patch for patch in self._patches
                             if patch[0] is not module or getattr(module, patch[1], None) is patch[3]]
            self._patch(module)

    def _listen_for_gevent(self, events: ModuleType) -> None:
        """Subscribe to gevent's patch notifications (zope.event), once per collector."""
        if self._gevent_listener is not None:
            self._gevent_listener.unsubscribe()
        self._gevent_listener = _GeventPatchListener.subscribe(events, self._patch_imported)

    def stop(self) -> None:
        """Restore what the modules held before start(); profiled locks go native-speed."""
        with self._state_lock:
            if self._recorder.active:
                self._unpatch()

    def _unpatch(self) -> None:
        self._recorder.active = False
        if self._import_hook is not None and self._import_hook in sys.meta_path:
            sys.meta_path.remove(self._import_hook)
        self._import_hook = None
        if self._gevent_listener is not None:
            self._gevent_listener.unsubscribe()
            self._gevent_listener = None
        for module, attribute, original, installed in reversed(self._patches):
            # Restore only our own patch: if something patched on top of it, leave that.
            if getattr(module, attribute, None) is installed:
                # Collectors stopped out of order: skip what stopped collectors installed.
                while _installed_by_stopped_collector(original):
                    original = _replaced_by(original)
                setattr(module, attribute, original)
        self._patches.clear()

    def _after_fork_in_child(self) -> None:
        """In a fork child: the parent's events are the parent's to report, and a lock another
        thread of the parent held at the fork is lost with it."""
        self._state_lock = _thread.allocate_lock()
        self._recorder.discard()
        self._period_start_ns = time.time_ns()

    def snapshot(self) -> Snapshot:
        """What was collected since the previous snapshot (or start), and reset it."""
        with self._state_lock:
            drained = self._recorder.drain()
            start_ns, end_ns = self._period_start_ns, time.time_ns()
            self._period_start_ns = end_ns
        self._thread_names.update(drained.thread_names)
        snapshot = Snapshot(
            samples=[self._sample(event) for event in drained.events],
            start_ns=start_ns,
            end_ns=end_ns,
            capture_pct=self.capture_pct,
            wait_sample_interval_ns=self.wait_sample_interval,
            max_wait_sample_interval_ns=drained.max_interval,
            lock_totals=[_lock_totals(totals) for totals in drained.lock_totals],
            long_waits=[self._long_wait(wait) for wait in drained.long_waits],
            dropped_events=drained.dropped,
        )
        self._forget_dead_threads()
        return snapshot

    def _sample(self, event: EventCounts) -> LockSample:
        # Each acquire the sampler captured stands for 100 / capture_pct of them: upscale so
        # totals estimate the real ones. Waits and blocking holds come weighted already.
        scale = 100.0 / self.capture_pct if self.capture_pct > 0 else 0.0
        info = event.lock_info
        return LockSample(
            lock_name=info.display_name,
            lock_kind=info.kind,
            frames=_resolve.resolve_frames(event.frames, event.omitted),
            thread_id=event.thread_id,
            thread_native_id=event.thread_native_id,
            thread_name=self._thread_name(event.thread_id),
            task_id=event.task_id,
            task_name=event.task_name,
            site=lock_site(info),
            acquire_count=round(event.acquire_count * scale),
            release_count=round(event.release_count * scale),
            release_hold_ns=round(event.release_hold_ns * scale),
            contended_count=round(event.contended_count),
            acquire_wait_ns=event.acquire_wait_ns,
            blocking_hold_ns=event.blocking_hold_ns,
            condition_wait_ns=event.condition_wait_ns,
            timed_out=event.timed_out,
            span_id=event.span_id,
            local_root_span_id=event.local_root_span_id,
            trace_id=_trace_id_hex(event.trace_id),
            span_wait_ns=event.span_wait_ns,
            lock_info=info,
        )

    def _long_wait(self, wait: LongWaitRecord) -> LongWait:
        return LongWait(
            lock_name=wait.lock_info.display_name,
            wait_ns=wait.wait_ns,
            thread_id=wait.thread_id,
            thread_name=self._thread_name(wait.thread_id),
            task_id=wait.task_id,
            task_name=wait.task_name,
            frames=_resolve.resolve_frames(wait.frames, 0),
            timed_out=wait.timed_out,
            span_id=wait.span_id,
            local_root_span_id=wait.local_root_span_id,
            trace_id=_trace_id_hex(wait.trace_id),
            lock_info=wait.lock_info,
        )

    def _thread_name(self, thread_id: int) -> str:
        name = self._thread_names.get(thread_id)
        if name is None:
            thread = threading._active.get(thread_id)  # type: ignore[attr-defined]
            name = thread.name if thread is not None else ""
        return name

    def _forget_dead_threads(self) -> None:
        # Names are resolved into this snapshot's samples; keep only the live threads' names.
        alive = set(threading._active)  # type: ignore[attr-defined]
        for thread_id in list(self._thread_names):
            if thread_id not in alive:
                del self._thread_names[thread_id]

    @property
    def table_size(self) -> Tuple[int, int]:
        """(keys held, maximum keys) of the bounded event table."""
        return self._recorder.entry_count, self._recorder.max_entries

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<LockCollector {state} capture_pct={self.capture_pct} max_frames={self.max_frames}>"


def _trace_id_hex(trace_id: Optional[int]) -> Optional[str]:
    """A 128-bit trace id as OpenTelemetry writes it: 32 lowercase hex digits."""
    return None if trace_id is None else f"{trace_id:032x}"


def _installed_by_collector(obj: Any) -> bool:
    return isinstance(obj, LockFactory) or (isinstance(obj, ProfiledClass) and "_lp_replaced" in vars(obj))


def _installed_by_stopped_collector(obj: Any) -> bool:
    if not _installed_by_collector(obj):
        return False
    return not (obj.active if isinstance(obj, LockFactory) else obj._lp_recorder.active)


def _replaced_by(obj: Any) -> Any:
    """What a collector's factory or class replaced when it was installed."""
    return obj.original if isinstance(obj, LockFactory) else vars(obj)["_lp_replaced"]


def _replaced_chain(obj: Any) -> List[Any]:
    """obj, what it replaced if a collector installed it, what that replaced, and so on."""
    chain = [obj]
    while _installed_by_collector(obj):
        obj = _replaced_by(obj)
        chain.append(obj)
    return chain


def _initializing(module: ModuleType) -> bool:
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _patch_once_imported(module: ModuleType, patch: Callable[[ModuleType], None]) -> None:
    """Run patch(module) as soon as the import another thread is running now has finished.

    A thread of lockprof's own takes and releases the module's import lock, which the importing
    thread holds until its import is over (every supported Python has that private function;
    importing the module waits the same way). It holds nothing the importer could need, and the
    collector weakly, as the import hook does."""
    weak_patch = weakref.WeakMethod(patch)  # type: ignore[arg-type]
    wait_for_import = getattr(importlib._bootstrap, "_lock_unlock_module", importlib.import_module)  # type: ignore[attr-defined]

    def wait_then_patch() -> None:
        try:
            wait_for_import(module.__name__)
        except BaseException:
            return
        live_patch = weak_patch()
        if live_patch is not None and sys.modules.get(module.__name__) is module:
            live_patch(module)

    original_thread_attribute("start_new_thread")(wait_then_patch, ())


# gevent's monkey-patching announces each module it patched through zope.event, whose list of
# subscribers is also zope.event's (imported by gevent.monkey before it patches anything).
_GEVENT_EVENTS = "zope.event"


class _GeventPatchListener:
    """A zope.event subscriber that re-patches threading after gevent has patched it: gevent
    replaces threading.Lock with its own, which the collector then profiles (a program may
    call patch_all() after profiling starts). Holds the collector weakly, as the import hook."""

    def __init__(self, subscribers: List[Any], patch: Callable[[ModuleType], None]) -> None:
        self._subscribers = subscribers
        self._patch = weakref.WeakMethod(patch)  # type: ignore[arg-type]

    @classmethod
    def subscribe(cls, events: ModuleType, patch: Callable[[ModuleType], None]) -> "Optional[_GeventPatchListener]":
        subscribers = getattr(events, "subscribers", None)
        if not isinstance(subscribers, list):
            return None
        listener = cls(subscribers, patch)
        subscribers.append(listener)
        return listener

    def unsubscribe(self) -> None:
        if self in self._subscribers:
            self._subscribers.remove(self)

    def __call__(self, event: Any) -> None:
        if getattr(event, "module_name", None) not in ("thread", "threading"):
            return
        patch, threading_module = self._patch(), sys.modules.get("threading")
        if patch is not None and threading_module is not None:
            patch(threading_module)


# The name of the exact contention of the locks beyond the core's per-period tracking limit.
UNTRACKED_LOCKS = "<other locks>"


def _lock_totals(totals: LockContention) -> LockTotals:
    info = totals.lock_info
    if info is None:
        site = Frame(UNTRACKED_LOCKS, "", 0)
        return LockTotals(UNTRACKED_LOCKS, "", site, totals.contended, totals.wait_ns,
                          totals.max_wait_ns, totals.timeouts)
    return LockTotals(info.display_name, info.kind, lock_site(info), totals.contended,
                      totals.wait_ns, totals.max_wait_ns, totals.timeouts, lock_info=info)


def lock_site(info: Any) -> Frame:
    """The frame of a lock's creation, named after the lock (how profiles show its totals)."""
    if info.created_code is None:
        return Frame(info.display_name, "", 0)
    created = _resolve.frame_at(info.created_code, info.created_offset)
    return Frame(info.display_name, created.filename, created.line)


def collector_from_config(config: Config) -> Optional[LockCollector]:
    """The lock collector a Config asks for, or None when lock profiling is disabled."""
    if not config.lock_enabled:
        return None
    return LockCollector(config.capture_pct, config.max_frames, config.exclude_modules,
                         wait_sample_interval=config.wait_sample_interval)
