# What every pool kind shares: task ids and names, the lane of the worker running a task, and
# `run`, which runs one call where the pool runs it and reports its start and end (with the
# CPU time its thread spent on it). Pool-kind modules only decide *what* a task is.
#
# Events are lists whose first item is the function that writes them as JSON lines (see
# channel.flush). A task's start and its end race the flusher thread, settled without locks
# by who first takes the key out of a small dict (dict.pop is atomic): if the flusher takes
# it, the start goes out alone and the worker reports the end later; if the worker does (the
# task ended first), the task goes out as one `task_ran` line. A queued event and the start
# of its task settle who reports the queue time the same way.

import itertools
import os
import threading
import time

from . import channel
from .channel import MAX_HELD, buf, flush, jstr, st

monotonic_ns = time.monotonic_ns
thread_time_ns = time.thread_time_ns
WITH_ARGS = os.environ.get("POOLSCOPE_ARGS") == "1"
MAX_NAMES = 1024  # names cached as JSON, by qualified name

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
    except Exception:
        text = [type(e).__name__]
    return jstr((text[0] if text else type(e).__name__)[:300])


# ---- events ------------------------------------------------------------------------------

def _queued_line(ev, out):
    t = ev[1].pop(0, None)  # None: the task's start took the queue time along
    if t is not None:
        out.append('{"ev":"task_queued","t":%d,"id":"%s","name":%s%s}' % (
            t, ev[2], ev[3], "" if ev[4] is None else ',"args":' + ev[4]))


def queued(name, shown, in_process):
    """Reports a task handed to a pool; returns (task id, the box holding its queue time for
    a start in this process to take along, or None for another process's start)."""
    task_id = _idp[0] + str(next(_counter))
    box = {0: monotonic_ns()}
    buf.append([_queued_line, box, task_id, name, shown])
    if not st["flusher"]:
        channel.start_flusher()
    return task_id, (box if in_process else None)


def _worker_line(ev, out):
    out.append('{"ev":"worker_started","t":%d,%s}' % (ev[1], ev[2]))


def _start_line(ev, out):
    # ev: [writer, box, lane, id, name, args, queued_t, t, end, cpu, error]
    extra = ev[2][0]
    if ev[6] is not None:
        extra = ',"queued_t":' + str(ev[6]) + extra
    if ev[5] is not None:
        extra = ',"args":' + ev[5] + extra
    if ev[1].pop(0, None) is not None:  # still running when written: its end comes later
        out.append('{"ev":"task_started","t":%d,"id":"%s","name":%s%s' % (
            ev[7], ev[3], ev[4], extra))
    elif ev[10] is None:
        out.append('{"ev":"task_ran","t":%d,"end_t":%d,"cpu_ns":%d,"id":"%s","name":%s%s' % (
            ev[7], ev[8], ev[9], ev[3], ev[4], extra))
    else:
        out.append('{"ev":"task_started","t":%d,"id":"%s","name":%s%s' % (
            ev[7], ev[3], ev[4], extra))
        out.append('{"ev":"task_failed","t":%d,"id":"%s","cpu_ns":%d,"error":%s}' % (
            ev[8], ev[3], ev[9], ev[10]))


def _end_line(ev, out):
    # ev: [writer, id, end, cpu, error]
    if ev[4] is None:
        out.append('{"ev":"task_finished","t":%d,"id":"%s","cpu_ns":%d}' % (ev[2], ev[1], ev[3]))
    else:
        out.append('{"ev":"task_failed","t":%d,"id":"%s","cpu_ns":%d,"error":%s}' % (
            ev[2], ev[1], ev[3], ev[4]))


def _exit_line(ev, out):
    status = "" if ev[3] is None else ',"status":' + jstr(ev[3])
    out.append('{"ev":"worker_exited","t":%d,"pid":%d%s}' % (ev[1], ev[2], status))


def _new_lane():
    """(how this worker's task lines end, whether it writes its ends at once) of the calling
    thread, announced on first use. A pool's thread is a thread lane; a process's main
    thread (a process pool's worker) is a process lane. Starts go out from the flusher thread
    (a write wakes poolscope, which could take the CPU from the task just starting); a
    process worker writes each end itself, so a worker that dies next has told it."""
    pid = st["pid"]
    thread = threading.current_thread()
    if thread is threading.main_thread():
        lane = (',"pid":%d}' % pid, True)
        who = '"pid":%d,"name":"PID %d"' % (pid, pid)
        if not st["flusher"]:
            channel.start_flusher()
            # Let the new thread reach its sleep now, not take the GIL from the first task.
            time.sleep(0.001)
    else:
        tid, name = threading.get_native_id(), jstr(thread.name[:200])
        # Task lines name the lane by pid and tid only: worker_started, written first, names it.
        lane = (',"pid":%d,"tid":%d}' % (pid, tid), False)
        who = '"pid":%d,"tid":%d,"name":%s' % (pid, tid, name)
        channel.start_flusher(threads=True)
    _tls.lane = lane
    buf.append([_worker_line, monotonic_ns(), who])
    return lane


def run(task_id, name, shown, box, fn, /, *args, **kwargs):
    """Runs `fn(*args, **kwargs)` as the task `task_id` on the calling worker. Pools carry it
    as `functools.partial(run, task_id, name, shown, box, fn)`, picklable by reference (`box`
    is None for a task sent to another process)."""
    try:
        lane = _tls.lane
    except AttributeError:
        lane = _new_lane()
    q = None if box is None else box.pop(0, None)
    claim = {0: 1}
    # The CPU clock is read inside the wall clock's window, never around it: CPU the kernel
    # charges to the thread between two reads (an interrupt, a host's steal) then counts in
    # both, and a task's cpu_ns never exceeds its wall time (poolscope refuses such a task).
    ev = [_start_line, claim, lane, task_id, name, shown, q, monotonic_ns(), 0, 0, None]
    c0 = thread_time_ns()
    buf.append(ev)
    if len(buf) >= MAX_HELD:
        flush()  # the flusher is stuck: bound the memory
    try:
        result = fn(*args, **kwargs)
    except BaseException as e:
        ev[9] = thread_time_ns() - c0
        ev[8], ev[10] = monotonic_ns(), one_line(e)
        if claim.pop(0, None) is None:  # its start was written: report the end now
            buf.append([_end_line, task_id, ev[8], ev[9], ev[10]])
        if lane[1]:
            flush()
        raise
    ev[9] = thread_time_ns() - c0
    ev[8] = monotonic_ns()
    if claim.pop(0, None) is None:
        buf.append([_end_line, task_id, ev[8], ev[9], None])
    if lane[1]:
        flush()
    return result


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
    buf.append([_exit_line, monotonic_ns(), pid, status])
    flush()


# ---- wrappers the pools carry (picklable by reference to this module) ----------------------

class Item(object):
    """`fn` called on items tagged by `tag`: each call one task (a chunk of a map is many)."""

    __slots__ = ("fn", "name", "star")

    def __init__(self, fn, name, star):
        self.fn, self.name, self.star = fn, name, star

    def __call__(self, tagged):
        task_id, box, shown, x = tagged
        return run(task_id, self.name, shown, box, self.fn, *x) if self.star else run(
            task_id, self.name, shown, box, self.fn, x)

    def __reduce__(self):
        return (Item, (self.fn, self.name, self.star))


class StarItem(Item):
    """An Item for callers that spread the item as arguments (`fn(*item)`: starmap, and
    concurrent.futures' `_process_chunk`)."""

    __slots__ = ()

    def __call__(self, task_id, box, shown, x):
        return run(task_id, self.name, shown, box, self.fn, *x) if self.star else run(
            task_id, self.name, shown, box, self.fn, x)

    def __reduce__(self):
        return (StarItem, (self.fn, self.name, self.star))


def tag(items, name, star, in_process):
    """Yields each item with its task id, reporting it queued (a generator: items are
    queued as the pool takes them)."""
    for x in items:
        shown = None
        if WITH_ARGS:
            shown = shown_args(x if star else (x,), {})
        task_id, box = queued(name, shown, in_process)
        yield (task_id, box, shown, x)


def _after_fork():
    global _tls
    _tls = threading.local()
    _idp[0] = "%d-" % os.getpid()


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
