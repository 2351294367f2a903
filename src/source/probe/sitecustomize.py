# poolscope's Python probe: reports the tasks of concurrent.futures executors (and so of
# asyncio's run_in_executor, asyncio.to_thread and Executor.map) to poolscope, in the event
# protocol of docs/protocol.md, on the channel named by POOLSCOPE_EVENTS.
#
# It is loaded as `sitecustomize` from a private directory first on PYTHONPATH, does nothing
# unless POOLSCOPE_EVENTS is set, and then loads the sitecustomize the user already had.
# It only wraps the public `submit` of ThreadPoolExecutor and ProcessPoolExecutor; it never
# blocks the program: events are written in batches with non-blocking writes, and when the
# channel is full they are dropped and counted (the count is reported in a last line).

import os
import sys


def _load_user_sitecustomize():
    """Runs the sitecustomize that this one shadows, if there is one."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        import importlib.machinery
        import importlib.util

        path = [p for p in sys.path if os.path.abspath(p or ".") != here]
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        sys.modules["sitecustomize"] = module
        spec.loader.exec_module(module)
    except Exception as e:  # the user's own sitecustomize failed: say so, as site.py would
        sys.stderr.write("Error in sitecustomize; set PYTHONVERBOSE for traceback:\n")
        sys.stderr.write("%s: %s\n" % (type(e).__name__, e))


def _install(channel):
    import contextvars
    import functools
    import json
    import threading
    import time

    try:
        import concurrent.futures as cf
        from concurrent.futures import process as cf_process
    except Exception:
        return

    monotonic_ns = time.monotonic_ns
    get_native_id = threading.get_native_id
    current_thread = threading.current_thread
    dumps = json.dumps
    with_args = os.environ.get("POOLSCOPE_ARGS") == "1"
    max_line = 4000  # each line, and each write, stays under PIPE_BUF (4096): writes are atomic
    flush_every_ns = 10_000_000

    state = {
        "lock": threading.Lock(),
        "fd": None,
        "pid": None,
        "buf": [],
        "dropped": 0,
        "last_flush": 0,
        "dead": False,
        "seq": 0,
        "seen": set(),
    }
    names = {}
    thread_names = {}

    def open_channel():
        state["pid"] = os.getpid()
        try:
            state["fd"] = os.open(channel, os.O_WRONLY | os.O_NONBLOCK | os.O_APPEND)
        except OSError:
            state["fd"] = None  # nobody reading: every event is dropped and counted
            return
        # The first process writes the header; its children (any start method) inherit the
        # marker with the environment and only add events.
        if os.environ.get("_POOLSCOPE_STARTED") != "1":
            os.environ["_POOLSCOPE_STARTED"] = "1"
            header = '{"poolscope":1,"origin_ns":%d,"producer":"python-probe","pid":%d,"python":"%s"}\n' % (
                monotonic_ns(), state["pid"], sys.version.split()[0])
            write(header.encode())

    def encode(ev):
        kind, t = ev[0], ev[1]
        if kind == "task_started":
            _, _, task, name, args, tid, thread = ev
            tid_part = "" if tid is None else ',"tid":%d,"thread":%s' % (tid, thread)
            args_part = "" if args is None else ',"args":%s' % args
            return '{"ev":"task_started","t":%d,"id":"%s","name":%s%s,"pid":%d%s}' % (
                t, task, name, args_part, state["pid"], tid_part)
        if kind == "task_finished":
            return '{"ev":"task_finished","t":%d,"id":"%s"}' % (t, ev[2])
        if kind == "task_queued":
            args_part = "" if ev[4] is None else ',"args":%s' % ev[4]
            return '{"ev":"task_queued","t":%d,"id":"%s","name":%s%s}' % (t, ev[2], ev[3], args_part)
        if kind == "task_failed":
            return '{"ev":"task_failed","t":%d,"id":"%s","error":%s}' % (t, ev[2], dumps(ev[3]))
        if kind == "worker_started":
            _, _, tid, thread = ev
            tid_part = "" if tid is None else ',"tid":%d' % tid
            return '{"ev":"worker_started","t":%d,"pid":%d%s,"name":%s}' % (
                t, state["pid"], tid_part, thread)
        return '{"ev":"dropped","t":%d,"count":%d,"pid":%d}' % (t, ev[2], state["pid"])

    def write(data):
        fd = state["fd"]
        if fd is None or state["dead"]:
            return False
        try:
            return os.write(fd, data) == len(data)
        except BlockingIOError:
            return False
        except OSError:  # the reader went away: stop trying
            state["dead"] = True
            return False

    def flush(now):
        """Writes what is buffered, in chunks of whole lines under PIPE_BUF."""
        lock = state["lock"]
        if not lock.acquire(blocking=False):
            return  # another thread is writing; it will take these too or the next one will
        try:
            write_buffered(now)
        except Exception:
            state["dropped"] += len(state["buf"])
            state["buf"] = []
        finally:
            lock.release()

    def write_buffered(now):
        if True:
            if state["pid"] != os.getpid():
                open_channel()
            buf = state["buf"]  # never replaced while threads append to it (but after a fork)
            n = len(buf)
            events = buf[:n]
            del buf[:n]
            state["last_flush"] = now
            chunk, size = [], 0
            for ev in events:
                line = encode(ev)
                if len(line) > max_line:
                    state["dropped"] += 1
                    continue
                if size + len(line) + 1 > max_line:
                    if not write(("\n".join(chunk) + "\n").encode()):
                        state["dropped"] += len(chunk)
                    chunk, size = [], 0
                chunk.append(line)
                size += len(line) + 1
            if chunk and not write(("\n".join(chunk) + "\n").encode()):
                state["dropped"] += len(chunk)

    def emit(ev, urgent=False):
        buf = state["buf"]
        buf.append(ev)
        t = ev[1]
        if urgent or len(buf) >= 64 or t - state["last_flush"] >= flush_every_ns:
            flush(t)

    def flush_soon(_future):
        if state["buf"]:
            flush(monotonic_ns())

    running = []  # one item per task running in this process: append/pop are atomic

    def task_name(fn):
        while isinstance(fn, functools.partial):
            inner = fn.func
            if getattr(inner, "__name__", "") == "_process_chunk":
                fn = fn.keywords.get("fn") or (fn.args[0] if fn.args else inner)
            elif isinstance(getattr(inner, "__self__", None), contextvars.Context) and fn.args:
                fn = fn.args[0]  # asyncio.to_thread: partial(context.run, func, ...)
            else:
                fn = inner
        name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
        if name is None:
            name = type(fn).__qualname__
        encoded = names.get(name)
        if encoded is None:
            encoded = dumps(name[:200])
            names[name] = encoded
        return encoded

    def shown_args(fn, args, kwargs):
        """The arguments of the user's call: for process-pool map, those in its chunk."""
        if (isinstance(fn, functools.partial)
                and getattr(fn.func, "__name__", "") == "_process_chunk" and len(args) == 1):
            chunk = args[0]
            if isinstance(chunk, tuple) and len(chunk) == 1 and isinstance(chunk[0], tuple):
                return short_args(chunk[0], {})
            return "%d calls" % len(chunk) if hasattr(chunk, "__len__") else "?"
        if isinstance(fn, functools.partial):
            if isinstance(getattr(fn.func, "__self__", None), contextvars.Context):
                return short_args(fn.args[1:] + args, dict(fn.keywords, **kwargs))
            return short_args(fn.args + args, dict(fn.keywords, **kwargs))
        return short_args(args, kwargs)

    def short_args(args, kwargs):
        try:
            parts = [repr(a) for a in args] + ["%s=%r" % kv for kv in kwargs.items()]
            text = ", ".join(parts).replace("\n", " ")
        except Exception:
            text = "?"
        return text if len(text) <= 60 else text[:59] + "…"

    class Task(object):
        """The submitted callable, wrapped to report its start and end where it runs.
        A module-level class, so process pools can pickle it under every start method."""

        __slots__ = ("fn", "id", "name", "args", "lane")

        def __init__(self, fn, task_id, name, args, lane):
            self.fn, self.id, self.name, self.args, self.lane = fn, task_id, name, args, lane

        def __getstate__(self):
            return (self.fn, self.id, self.name, self.args, self.lane)

        def __setstate__(self, s):
            self.fn, self.id, self.name, self.args, self.lane = s

        def __call__(self, *args, **kwargs):
            t = monotonic_ns()
            if self.lane == "thread":
                tid = get_native_id()
                thread = thread_names.get(tid)
                if thread is None:
                    thread = dumps(current_thread().name[:200])
                    thread_names[tid] = thread
            else:
                tid, thread = None, None
            key = tid if tid is not None else os.getpid()
            if key not in state["seen"]:
                state["seen"].add(key)
                emit(("worker_started", t, tid, thread or dumps("PID %d" % os.getpid())))
            running.append(None)
            emit(("task_started", t, self.id, self.name, self.args, tid, thread))
            try:
                result = self.fn(*args, **kwargs)
            except BaseException as e:
                running.pop()
                text = ("%s: %s" % (type(e).__name__, e)).splitlines()
                emit(("task_failed", monotonic_ns(), self.id, (text[0] if text else "")[:300]),
                     urgent=not running or self.lane != "thread")
                raise
            running.pop()
            # Flush at once when this process's pool goes idle, so the display is not behind.
            emit(("task_finished", monotonic_ns(), self.id),
                 urgent=not running or self.lane != "thread")
            return result

    # Pickled by reference under a name of its own: the user's sitecustomize, loaded after
    # this one, takes over the name `sitecustomize`.
    Task.__module__ = "_poolscope_probe"
    Task.__qualname__ = Task.__name__ = "_PoolscopeTask"
    probe = sys.modules[__name__]
    probe._PoolscopeTask = Task
    sys.modules["_poolscope_probe"] = probe

    def wrap(cls, lane):
        original = cls.submit

        @functools.wraps(original)
        def submit(self, fn, /, *args, **kwargs):
            if isinstance(fn, Task):
                return original(self, fn, *args, **kwargs)
            state["seq"] += 1
            task_id = "%d-%d" % (os.getpid(), state["seq"])
            name = task_name(fn)
            shown = dumps(shown_args(fn, args, kwargs)) if with_args else None
            emit(("task_queued", monotonic_ns(), task_id, name, shown))
            future = original(self, Task(fn, task_id, name, shown, lane), *args, **kwargs)
            if lane == "process":
                # Process workers write their own events; this process's (the queued ones)
                # go out when a task completes, from the executor's own thread.
                future.add_done_callback(flush_soon)
            return future

        cls.submit = submit

    wrap(cf.ThreadPoolExecutor, "thread")
    wrap(cf_process.ProcessPoolExecutor, "process")

    def at_exit():
        now = monotonic_ns()
        flush(now)
        if state["dropped"]:
            dropped, state["dropped"] = state["dropped"], 0
            write((encode(("dropped", now, dropped)) + "\n").encode())

    import atexit

    atexit.register(at_exit)

    def after_fork():
        # The child shares the channel; what the parent had buffered is the parent's to write.
        state["lock"] = threading.Lock()
        state["pid"] = os.getpid()
        state["buf"] = []
        state["seen"] = set()
        del running[:]
        state["dropped"] = 0

    os.register_at_fork(after_in_child=after_fork)
    open_channel()


if os.environ.get("POOLSCOPE_EVENTS"):
    try:
        _install(os.environ["POOLSCOPE_EVENTS"])
    except Exception as _e:  # never break the program being watched
        sys.stderr.write("poolscope probe disabled: %s: %s\n" % (type(_e).__name__, _e))
_load_user_sitecustomize()
