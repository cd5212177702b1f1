"""The lock kinds, in one table: each name lockprof replaces in threading and asyncio, the kind
recorded for what it makes, and the kind whose wrapper profiles it. The collector patches from
it; the compiled core (_lock.pyx, _primitives.pyx) picks each kind's wrapper from it."""

LOCK = "lock"
RLOCK = "rlock"
SEMAPHORE = "semaphore"
BOUNDED_SEMAPHORE = "bounded-semaphore"
CONDITION = "condition"
ASYNCIO_LOCK = "asyncio-lock"
ASYNCIO_SEMAPHORE = "asyncio-semaphore"
ASYNCIO_BOUNDED_SEMAPHORE = "asyncio-bounded-semaphore"
ASYNCIO_CONDITION = "asyncio-condition"

# (module, attribute, kind, profiled as). threading's Lock and RLock are factory functions (or C
# types): a compiled LockFactory replaces them. The others are Python classes: a profiled
# subclass replaces them, with the wrapper of the kind it is profiled as. asyncio's Lock comes
# before its Condition, whose own lock is made from it.
KINDS = (
    ("threading", "Lock", LOCK, LOCK),
    ("threading", "RLock", RLOCK, RLOCK),
    ("threading", "Semaphore", SEMAPHORE, SEMAPHORE),
    ("threading", "BoundedSemaphore", BOUNDED_SEMAPHORE, SEMAPHORE),
    ("threading", "Condition", CONDITION, CONDITION),
    ("asyncio", "Lock", ASYNCIO_LOCK, ASYNCIO_LOCK),
    ("asyncio", "Semaphore", ASYNCIO_SEMAPHORE, ASYNCIO_SEMAPHORE),
    ("asyncio", "BoundedSemaphore", ASYNCIO_BOUNDED_SEMAPHORE, ASYNCIO_SEMAPHORE),
    ("asyncio", "Condition", ASYNCIO_CONDITION, ASYNCIO_CONDITION),
)

# The attributes replaced per module, with the kind each makes, in patch order.
PATCHED = {module: tuple((attribute, kind) for m, attribute, kind, _ in KINDS if m == module)
           for module in dict.fromkeys(module for module, _, _, _ in KINDS)}
FACTORY_KINDS = (LOCK, RLOCK)
PROFILED_AS = {kind: profiled_as for _, _, kind, profiled_as in KINDS}
ASYNCIO_KINDS = tuple(kind for module, _, kind, _ in KINDS if module == "asyncio")
