"""Edge timing: locks made and used at interpreter shutdown, in atexit handlers, in __del__ during
garbage collection, in signal handlers, in threads started outside threading, and by logging
handlers that take locks while lockprof itself warns. No crash, no deadlock, no recursion into
the profiler; what can be counted is counted exactly.

Each case is a program of its own, so that an interpreter's exit is really exercised."""

from __future__ import annotations

import asyncio
import sys

import pytest

from scripthelpers import (line_of, negative_values, profiles, read, run_script, values_by_line,
                           values_by_variable)

# What a broken exit or a recursion would print.
TROUBLE = ("Fatal Python error", "Segmentation fault", "Traceback", "Exception ignored",
           "RecursionError", "Warning")


def assert_clean(result):
    assert result.returncode == 0, result.stderr
    assert not any(word in result.stderr for word in TROUBLE), result.stderr


SHUTDOWN = """
    import sys, threading
    from lockprof import Profiler

    Profiler(capture_pct=100, output=sys.argv[1], upload_interval=0.01).start()
    started = threading.Barrier(3)

    def churn():  # daemon threads still making and using locks while the interpreter exits
        started.wait()
        shared = threading.RLock()
        pool = [threading.Lock() for _ in range(8)]
        made = 0
        while True:
            made += 1
            # A new lock now and then: each lock is its own key in the bounded event table,
            # and a full table would drop the events this test counts.
            lock = threading.Lock() if made % 500 == 0 else pool[made % 8]
            with lock, shared:
                threading.Condition(pool[0]).acquire(False)

    for _ in range(2):
        threading.Thread(target=churn, daemon=True).start()
    started.wait()

    def last_words():  # a non-daemon thread that is still working when the main thread ends
        for _ in range(1000):
            late = threading.Lock()
            with late:
                pass

    threading.Thread(target=last_words).start()
    # No stop(): the main thread ends here and the exit writes the final profile.
"""


def test_locks_used_while_the_interpreter_shuts_down(tmp_path):
    prefix = str(tmp_path / "exit")
    for _ in range(3):  # different interleavings of the daemon threads with finalisation
        result = run_script(SHUTDOWN, str(tmp_path), prefix)
        assert_clean(result)
    assert values_by_variable(profiles(prefix)).get("late") == 3000
    assert not negative_values(profiles(prefix))


ATEXIT = """
    import atexit, sys, threading
    from lockprof import Profiler

    def registered_before_start():  # runs after lockprof's own exit handler: after stop()
        lock = threading.Lock()
        with lock:
            pass
        print(type(lock).__name__)

    atexit.register(registered_before_start)
    Profiler(capture_pct=100, output=sys.argv[1], upload_interval=3600).start()

    def registered_after_start():  # runs before lockprof's exit handler: still profiled
        at_exit = threading.Lock()
        def contend():
            with at_exit:
                pass
        with at_exit:
            thread = threading.Thread(target=contend)
            try:
                thread.start()
            except RuntimeError:  # 3.12 starts no thread in atexit handlers, profiled or not
                thread = None
            while not at_exit.locked():
                pass
        if thread is None:
            contend()
        else:
            thread.join()
        print(type(at_exit).__name__)

    atexit.register(registered_after_start)
"""


def test_locks_in_atexit_handlers_before_and_after_the_final_export(tmp_path):
    prefix = str(tmp_path / "atexit")
    result = run_script(ATEXIT, str(tmp_path), prefix)
    assert_clean(result)
    # LIFO: the handler registered after start() runs first, while profiling; the other after.
    assert result.stdout.split() == ["ProfiledLock", "lock"]
    assert values_by_variable(profiles(prefix)) == {"at_exit": 2}


GC_DEL = """
    import gc, sys, threading
    from lockprof import Profiler

    profiler = Profiler(capture_pct=100, output=sys.argv[1], upload_interval=0.005)
    profiler.start()
    shared = threading.Lock()
    finalised = []  # append is atomic: a finaliser run inside another loses no count

    class Finalised:
        def __init__(self):
            self.cycle = self  # only the cycle collector frees it, at any allocation
        def __del__(self):
            own = threading.Lock()  # made and used inside a collection
            with own, shared:
                finalised.append(None)

    gc.set_threshold(1, 1, 1)  # collections run inside lockprof's own code too
    for _ in range(3000):
        Finalised()
        with shared:
            pass
        if len(finalised) % 500 == 0:
            profiler.export()
    gc.collect()
    gc.set_threshold(700, 10, 10)
    count = len(finalised)
    profiler.stop()
    print(count)
"""


def test_locks_in_finalizers_during_garbage_collection(tmp_path):
    prefix = str(tmp_path / "gc")
    result = run_script(GC_DEL, str(tmp_path), prefix)
    assert_clean(result)
    deleted = int(result.stdout)
    assert deleted == 3000
    counts = values_by_line(profiles(prefix))
    assert counts[line_of(GC_DEL, "shared = threading.Lock()")] == 3000 + deleted
    assert counts[line_of(GC_DEL, "own = threading.Lock()")] == deleted
    assert not negative_values(profiles(prefix))


SIGNALS = """
    import signal, sys, threading, time
    from lockprof import Profiler

    profiler = Profiler(capture_pct=100, output=sys.argv[1], upload_interval=0.005)
    profiler.start()
    in_handler = threading.RLock()  # the main thread holds it too: the handler nests
    calls = []  # append is atomic: a handler interrupted by the next one loses no count

    def handler(signum, frame):
        made_in_handler = threading.Lock()
        with made_in_handler, in_handler:
            calls.append(signum)

    signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline or len(calls) < 200:
        with in_handler:
            threading.Lock().acquire(False)
        profiler.snapshot()  # the handler also lands inside the profiler's own code
    signal.setitimer(signal.ITIMER_REAL, 0, 0)
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    count = len(calls)
    profiler.stop()
    print(count)
"""


@pytest.mark.skipif(not hasattr(__import__("signal"), "setitimer"), reason="needs setitimer")
def test_locks_in_signal_handlers(tmp_path):
    prefix = str(tmp_path / "signals")
    result = run_script(SIGNALS, str(tmp_path), prefix)
    assert_clean(result)
    handled = int(result.stdout)
    assert handled >= 200
    assert values_by_line(profiles(prefix))[line_of(SIGNALS, "made_in_handler = ")] == handled


FOREIGN_THREADS = """
    import _thread, ctypes, ctypes.util, sys, threading
    from lockprof import Profiler

    profiler = Profiler(capture_pct=100, output=sys.argv[1], upload_interval=3600)
    profiler.start()
    shared = threading.Lock()
    idents = []

    def body():  # runs in a thread the threading module did not start
        foreign = threading.Lock()
        for _ in range(10):
            with foreign, shared:
                pass
        idents.append(threading.get_ident())
        threading.current_thread()  # makes a _DummyThread entry, like C-started threads do

    # A thread made by C code with pthread_create, entering Python through a ctypes callback
    # (which takes the GIL with PyGILState_Ensure, as C extensions do).
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
    libc.pthread_create.argtypes = [ctypes.POINTER(ctypes.c_ulong), ctypes.c_void_p,
                                    ctypes.c_void_p, ctypes.c_void_p]
    libc.pthread_join.argtypes = [ctypes.c_ulong, ctypes.c_void_p]
    START = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)
    start = START(lambda arg: body())
    pthread = ctypes.c_ulong()
    assert libc.pthread_create(ctypes.byref(pthread), None, ctypes.cast(start, ctypes.c_void_p), None) == 0
    assert libc.pthread_join(pthread, None) == 0
    # A thread from _thread, without threading's bookkeeping.
    done = _thread.allocate_lock()
    done.acquire()
    _thread.start_new_thread(lambda: (body(), done.release()), ())
    done.acquire()
    profiler.stop()
    print(*idents)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="pthread_create")
def test_locks_in_threads_started_outside_threading(tmp_path):
    prefix = str(tmp_path / "foreign")
    result = run_script(FOREIGN_THREADS, str(tmp_path), prefix)
    assert_clean(result)
    idents = {int(ident) for ident in result.stdout.split()}
    assert len(result.stdout.split()) == 2  # the two threads may get the same identifier
    counts = values_by_variable(profiles(prefix))
    assert (counts["foreign"], counts["shared"]) == (20, 20)
    threads = set()
    for path in profiles(prefix):
        threads |= {sample.thread_id for sample in read(path).samples}
    assert idents <= threads


LOGGING = """
    import logging, os, sys, threading, warnings
    from lockprof import Profiler

    class LockingHandler(logging.Handler):  # its own lock (profiled) plus one more
        def __init__(self):
            super().__init__()
            self.extra = threading.Lock()
            self.records = 0
        def emit(self, record):
            with self.extra:
                self.records += 1
                threading.Lock().acquire(False)

    handler = LockingHandler()
    logging.getLogger().addHandler(handler)
    logging.captureWarnings(True)  # lockprof's own warnings go through the handler
    warnings.simplefilter("always")
    os.environ["DD_PROFILING_MAX_FRAMES"] = "many"  # a bad variable: a warning at construction
    # Every export fails (the output is a directory), so the exporter thread warns every 10 ms.
    os.mkdir(sys.argv[1] + ".%d.0.pprof" % os.getpid())
    profiler = Profiler(capture_pct=100, output=sys.argv[1], upload_interval=0.01)
    profiler.start()
    handler.extra = threading.Lock()  # profiled from now on
    log = logging.getLogger("app")
    threads = [threading.Thread(target=lambda: [log.warning("x") for _ in range(2000)]) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    profiler.stop()
    print(handler.records)
"""


def test_logging_handler_taking_locks_while_lockprof_warns(tmp_path):
    result = run_script(LOGGING, str(tmp_path), str(tmp_path / "logging"))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr, result.stderr
    # 6000 application records, plus the config warning and the failed exports' warnings.
    assert int(result.stdout) > 6000


PRIMITIVES = [("threading", name) for name in ("Lock", "RLock", "Condition", "Semaphore",
                                               "BoundedSemaphore", "Event", "Barrier")]
PRIMITIVES += [("asyncio", name) for name in ("Lock", "Condition", "Semaphore", "BoundedSemaphore",
                                              "Event", "Queue")]


def subclass_of(module_name, name):
    """A subclass of module.name made now, or the exception that making it raised."""
    base = getattr(__import__(module_name), name)
    try:
        return type(f"My{name}", (base,), {"__module__": __name__})
    except Exception as error:  # a factory function, or a type that is not subclassable
        return error


@pytest.mark.parametrize("module_name, name", PRIMITIVES)
def test_subclassing_primitives_while_profiling_works_as_without(module_name, name):
    from lockprof import LockCollector

    native = subclass_of(module_name, name)
    collector = LockCollector(capture_pct=100)
    collector.start()
    try:
        profiled = subclass_of(module_name, name)
    finally:
        collector.stop()
    assert isinstance(profiled, type) == isinstance(native, type), (native, profiled)
    if not isinstance(native, type):
        assert type(profiled) is type(native)
        return
    if module_name == "asyncio":  # before 3.10 they bind to the running loop when made
        asyncio.run(_make_in_loop(profiled))
        return
    instance = profiled(2) if name == "Barrier" else profiled()
    if hasattr(instance, "acquire"):
        with instance:
            pass


async def _make_in_loop(cls):
    instance = cls()
    if hasattr(instance, "acquire"):
        async with instance:
            pass
