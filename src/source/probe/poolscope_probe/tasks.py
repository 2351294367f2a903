# What every pool kind shares: task ids and names, the lane of the worker running a task, and
# `run`, which runs one call where the pool runs it and reports it (with the CPU time its
# thread spent on it). Pool-kind modules only decide *what* a task is.
#
# A task costs its threads as little as can be: a tuple appended to the buffer when it is
# queued, its task in its lane's slot while it runs, and one tuple appended when it ends
# (list.append is atomic under the GIL: no lock). The flusher thread turns them into lines
# (lines.py), one `task_ran` line for most tasks, and reports the starts of tasks that run
# long enough from the slots. A thread pool's tasks of a function already named are cheaper
# still: two packed records each, which the flusher writes without making a line of each
# (run_packed, lines.py).

import itertools
import os
import threading
import time

from . import channel, lines
from .channel import MAX_HELD, buf, flush, jstr, st
from .lines import NAME_BITS, NAME_MASK, PACKED_QUEUED, PACKED_RAN, QUEUED, RAN, names
from .lines import indexed, pack_queued, pack_ran, quals
from .native import fast

monotonic_ns = time.monotonic_ns
thread_time_ns = time.thread_time_ns
WITH_ARGS = os.environ.get("POOLSCOPE_ARGS") == "1"
MAX_NAMES = 1024  # names cached as JSON, by qualified name
# A task's CPU time (`cpu_ns`) is measured when the last task of the same name ran this long
# or longer (and for a name's first task). The thread's CPU clock is a system call, and two
# of them cost a no-op task on a busy pool more than the rest of its recording (each is also a
# point where the kernel may switch threads while this one holds the GIL; issue 17). Tiny
# tasks have no CPU time of their own, absent, not 0: their lane's CPU and waits still show,
# measured by poolscope from the kernel.
CPU_TIMED_NS = 100_000
MAX_TIMED = 1024  # names whose last task's length is kept (others are always measured)
_timed = {}  # label: whether its next task's CPU time is measured

_counter = itertools.count(1)
_idp = ["%d-" % os.getpid()]
_tls = threading.local()
_names = {}
function_type = type(lambda: None)


def next_id():
    """A task id unique in the program: `<pid of the submitting process>-<n>`."""
    return _idp[0] + str(next(_counter))


# ---- naming ------------------------------------------------------------------------------

def unwrap(fn):
    """The user's callable inside the wrappers pools put around it."""
    for _ in range(8):
        inner = getattr(fn, "func", None)  # functools.partial, and wrappers that say `func`
        if inner is None:
            break
        if getattr(inner, "__name__", "") == "_process_chunk":
            fn = fn.keywords.get("fn") or (fn.args[0] if fn.args else inner)
        elif type(getattr(inner, "__self__", None)).__name__ == "Context" and fn.args:
            fn = fn.args[0]  # asyncio.to_thread: partial(context.run, func, ...)
        else:
            fn = inner
    return fn


def label_of(name, shown):
    """A task's name and arguments as its lines carry them: `"name"` or `"name","args":"…"`."""
    return name if shown is None else name + ',"args":' + shown


def name_of(fn):
    """The callable's qualified name, as JSON, cached."""
    if type(fn) is function_type:  # the common case, without unwrapping
        name = fn.__qualname__
    else:
        fn = unwrap(fn)
        name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
        if not isinstance(name, str):
            name = type(fn).__qualname__
    encoded = _names.get(name)
    if encoded is None:
        encoded = jstr(name[:200])
        if len(_names) < MAX_NAMES:
            _names[name] = encoded
    return encoded


def shown_args(args, kwargs):
    """A short text of a call's arguments, as JSON (only with `poolscope --args`)."""
    try:
        parts = [repr(a) for a in args] + ["%s=%r" % kv for kv in kwargs.items()]
        text = ", ".join(parts).replace("\n", " ")
    except Exception:
        text = "?"
    return jstr(text if len(text) <= 60 else text[:59] + "…")


def one_line(e):
    """`Type: message`, the first line, cut to 300 characters, as JSON."""
    try:
        text = ("%s: %s" % (type(e).__name__, e)).splitlines()
    except BaseException:  # the program's __str__ may raise anything: the task's own stays
        text = [type(e).__name__]
    return jstr((text[0] if text else type(e).__name__)[:300])


# ---- events ------------------------------------------------------------------------------

append = buf.append


def queued(label, local=True):
    """Reports a task handed to a pool (`label`: see label_of()); returns its id. `local`:
    the pool runs it in this process (else its queued line goes out at once: lines.py)."""
    task_id = _idp[0] + str(next(_counter))
    append((QUEUED if local else lines.queued_now, monotonic_ns(), task_id, label))
    if not st["flusher"]:
        channel.start_flusher()
    return task_id


def _new_lane():
    """The calling thread's slot, announced on first use: [lane, running task, thread, is a
    process lane, the packed task told started (lines.py), the tid its packed records carry
    (0: none), a packed task's start]. A pool's thread is a thread lane; a process's main
    thread (a process pool's worker) is a process lane, which writes each task's end itself
    (`slot[3]`), so that a worker that dies next has told it."""
    pid = st["pid"]
    thread = threading.current_thread()
    if thread is threading.main_thread():
        tid = 0
        lane = ',"pid":%d' % pid
        who = '"pid":%d,"name":"PID %d"' % (pid, pid)
        if not st["flusher"]:
            channel.start_flusher()
            # Let the new thread reach its sleep now, not take the GIL from the first task.
            time.sleep(0.001)
    else:
        tid, name = threading.get_native_id(), jstr(thread.name[:200])
        # Task lines name the lane by pid and tid only: worker_started, written first, names it.
        lane = ',"pid":%d,"tid":%d' % (pid, tid)
        who = '"pid":%d,"tid":%d,"name":%s' % (pid, tid, name)
        channel.start_flusher(threads=True)
    packs = tid if tid < 1 << 32 else 0  # a packed record's tid is 32 bits (lines.py)
    slot = [lane, None, thread, thread is threading.main_thread(), None, packs, 0]
    append((lines.worker, monotonic_ns(), who))
    lines.slots.append(slot)
    _tls.slot = slot
    return slot


def run(task_id, label, fn, /, *args, **kwargs):
    """Runs `fn(*args, **kwargs)` as the task `task_id` on the calling worker. Pools carry it
    as `functools.partial(run, task_id, label, fn)`, picklable by reference."""
    return run_call(task_id, label, fn, args, kwargs)


def run_call(task_id, label, fn, args, kwargs):
    """run(), for a caller that holds the call's arguments as a tuple and a dict (they are
    not packed again)."""
    try:
        slot = _tls.slot
    except AttributeError:
        slot = _new_lane()
    outer = slot[1]  # a task running a task on the same thread (Dask's sync scheduler)
    # The CPU clock is read inside the wall clock's window, never around it: CPU the kernel
    # charges to the thread between two reads (an interrupt, a host's steal) then counts in
    # both, and a task's cpu_ns never exceeds its wall time (poolscope refuses such a task).
    # It is read only when the last task of this name ran CPU_TIMED_NS or longer (see there).
    timed = _timed.get(label, True)
    t0 = monotonic_ns()
    c0 = thread_time_ns() if timed else 0
    slot[1] = (task_id, label, slot[0], t0)
    idp = _idp[0]
    try:
        result = fn(*args, **kwargs)
    except BaseException as e:
        if _idp[0] is idp:  # else a child of a fork in the task: the task is its parent's
            _failed(slot, outer, task_id, label, (t0, c0, timed), e)
        raise
    if _idp[0] is not idp:
        return result
    cpu = ',"cpu_ns":%d' % (thread_time_ns() - c0) if timed else ""
    t1 = monotonic_ns()
    slot[1] = outer
    _ran_for(label, t1 - t0)
    append((RAN, t0, t1, cpu, task_id, label, slot[0]))
    if slot[3] or len(buf) >= MAX_HELD:  # _told(), without a call for the common case
        _told(slot)
    return result


def _failed(slot, outer, task_id, label, clocks, e, packed=None):
    """Records the failure of the task the thread's slot holds (run_call(), run_packed()):
    `clocks` are its start's (t0, CPU clock, whether that was read), `outer` what the slot
    holds after it, `packed` the slot's packed task (whose start the flusher may have told:
    lines.failed_packed)."""
    t0, c0, timed = clocks
    cpu = ',"cpu_ns":%d' % (thread_time_ns() - c0) if timed else ""
    t1 = monotonic_ns()
    slot[1] = outer  # before the end is appended: see lines.py
    _ran_for(label, t1 - t0)
    rec = (lines.failed, t0, t1, cpu, task_id, label, slot[0], one_line(e))
    if packed is not None:
        rec = (lines.failed_packed,) + rec[1:] + (slot, packed)
    append(rec)
    _told(slot)


def _ran_for(label, wall_ns):
    """Whether the next task called `label` has its CPU time measured (see CPU_TIMED_NS)."""
    if len(_timed) < MAX_TIMED or label in _timed:
        _timed[label] = wall_ns >= CPU_TIMED_NS


def queue_packed(fn):
    """A thread pool's task of `fn` as a packed task (an int: lines.NAME_BITS), its queued
    record appended; None when `fn`'s tasks are not packed (their name is not written)."""
    if type(fn) is not function_type:
        return None
    n = indexed.get(id(fn.__code__))  # lines.packed_name(), inline: the hot path
    if n is None or fn.__qualname__ != quals[n]:
        return None
    task = next(_counter) << NAME_BITS | n
    append(pack_queued(task << 8 | PACKED_QUEUED, monotonic_ns()))
    return task


def run_packed(task, fn, args, kwargs):
    """run_call() for a task queued as a packed record, `task` its number and name as an int
    (lines.NAME_BITS; futures.py): on a pool's thread it ends as a packed record too, else
    (a task inside a task, a process lane) as any other task."""
    try:
        slot = _tls.slot
    except AttributeError:
        slot = _new_lane()
    number, n = task >> NAME_BITS, task & NAME_MASK
    tid = slot[5]
    if not tid or slot[1] is not None or n < lines.inherited[0]:
        return run_call(_idp[0] + str(number), names[n], fn, args, kwargs)
    label = names[n]
    timed = _timed.get(label, True)  # as run_call()'s
    t0 = monotonic_ns()
    c0 = thread_time_ns() if timed else 0
    slot[6] = t0  # before the task itself: see lines.NAME_BITS
    slot[1] = task
    idp = _idp[0]
    try:
        result = fn(*args, **kwargs)
    except BaseException as e:
        if _idp[0] is idp:  # as run_call()'s
            _failed(slot, None, idp + str(number), label, (t0, c0, timed), e, task)
        raise
    if _idp[0] is not idp:
        return result
    cpu = thread_time_ns() - c0 if timed else -1
    t1 = monotonic_ns()
    slot[1] = None
    if (t1 - t0 >= CPU_TIMED_NS) is not timed:  # _ran_for(), without a call when unchanged
        _ran_for(label, t1 - t0)
    append(pack_ran(task << 8 | PACKED_RAN, t0, t1, cpu, tid))
    if len(buf) >= MAX_HELD:
        flush()
    return result


def _told(slot):
    """After a task's end is appended: a process worker writes it itself before it goes on,
    since its pool may end it (SIGTERM, os._exit) at any time after the task; elsewhere only
    a flusher stuck on a full channel makes the task's thread write (to bound the memory)."""
    if slot[3]:
        # Waits for the lock: when the flusher holds it, it may have taken its batch before
        # this end was appended, and the worker may be ended before the flusher's next turn
        # (one failure in a multiprocessing fork run became "its worker exited while running
        # it"). At most a second for the lock, and no wait for room (a full channel drops
        # and counts): poolscope far behind must not stall the pool.
        flush(wait=True, wait_s=1.0)
    elif len(buf) >= MAX_HELD:
        flush()


# Worker processes their pool is ending with SIGTERM (multiprocessing's Pool.terminate).
STOPPED_BY_POOL = set()


def worker_exited(pid, returncode):
    """A worker process of this one ended (seen when the pool reaped it). poolscope fails the
    tasks still running on its lane, with this status."""
    if returncode is None:
        return
    if returncode == -15 and pid in STOPPED_BY_POOL:
        STOPPED_BY_POOL.discard(pid)
        returncode = 0
    if returncode < 0:
        signals = __import__("sys").modules.get("signal")
        try:
            status = "killed by " + signals.Signals(-returncode).name
        except Exception:
            status = "killed by signal %d" % -returncode
    elif returncode > 0:
        status = "exit %d" % returncode
    else:
        status = None
    append((lines.exited, monotonic_ns(), pid, status))
    flush()


# ---- wrappers the pools carry (picklable by reference to this module) ----------------------

class Item(object):
    """`fn` called on items tagged by `tag`: each call one task (a chunk of a map is many)."""

    __slots__ = ("fn", "name", "star")

    def __init__(self, fn, name, star):
        self.fn, self.name, self.star = fn, name, star

    def __call__(self, tagged):
        task_id, label, x = tagged
        if self.star:
            return run(task_id, label, self.fn, *x)
        return run(task_id, label, self.fn, x)

    def __reduce__(self):
        return (Item, (self.fn, self.name, self.star))


class StarItem(Item):
    """An Item for callers that spread the item as arguments (`fn(*item)`: starmap, and
    concurrent.futures' `_process_chunk`)."""

    __slots__ = ()

    def __call__(self, task_id, label, x):
        if self.star:
            return run(task_id, label, self.fn, *x)
        return run(task_id, label, self.fn, x)

    def __reduce__(self):
        return (StarItem, (self.fn, self.name, self.star))


def tag(items, name, star, local):
    """Yields each item with its task id and label, reporting it queued (a generator: items
    are queued as the pool takes them); `local`: as queued()'s."""
    for x in items:
        shown = shown_args(x if star else (x,), {}) if WITH_ARGS else None
        text = label_of(name, shown)
        yield (queued(text, local), text, x)


def failed_native(slot, task, t0, c0, timed, e):
    """fast.c's run(): the failure of its task, recorded as run_packed() records it."""
    _failed(slot, None, _idp[0] + str(task >> NAME_BITS), names[task & NAME_MASK],
            (t0, c0, timed), e, task)


def _bind(module):
    """Gives fast.c the probe's objects it uses (again after a fork: a new thread-local)."""
    module.init(buf, indexed, quals, names, _timed, _counter, function_type, _tls, _new_lane,
                run_packed, failed_native, flush, lines.inherited, MAX_HELD)


def _native():
    """fast.c, bound to the probe's objects, if it was loaded (native.py); else None."""
    if fast is None:
        return None
    try:
        _bind(fast)
    except Exception:  # never break the program: the Python ones do the same
        return None
    return fast


native = _native()
# What futures.py's work item calls: fast.c's, or the same in Python.
queue_task = native.queued if native else queue_packed
run_task = native.run if native else run_packed


def _after_fork():
    global _tls
    _tls = threading.local()
    _idp[0] = "%d-" % os.getpid()
    lines.after_fork()
    if native:
        try:
            _bind(native)
        except Exception:  # never break the program
            pass


os.register_at_fork(after_in_child=_after_fork)


# Callables that report their own tasks (a joblib batch reports each call in it): a pool
# that runs one must not report it again as a task of its own.
SELF_REPORTING = set()


def self_reporting(fn):
    for _ in range(3):
        if type(fn) in SELF_REPORTING:
            return True
        fn = getattr(fn, "func", None)
        if fn is None:
            return False
    return False


# Frameworks whose own callables are housekeeping, not the program's work: the executors
# that carry a batch of Dask keys, Dask's and Ray's offload and I/O threads. Their users'
# tasks are reported where the framework runs them (dask.py, ray.py).
FRAMEWORKS = frozenset(("dask", "distributed", "ray", "tornado"))


def internal(fn, args=()):
    """Whether `fn(*args)` is a framework's own call (see FRAMEWORKS); `context.run(f, …)`
    is `f`'s. Cheap for a plain function: it is on every submit's path."""
    if type(fn) is function_type:
        return (fn.__module__ or "").partition(".")[0] in FRAMEWORKS
    fn = unwrap(fn)
    if args and type(getattr(fn, "__self__", None)).__name__ == "Context":
        fn = unwrap(args[0])
    module = getattr(fn, "__module__", None) or ""
    return module.partition(".")[0] in FRAMEWORKS
