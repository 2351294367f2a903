# poolscope's Python probe: reports the tasks of concurrent.futures executors (and so of
# asyncio's run_in_executor, asyncio.to_thread and Executor.map) to poolscope, in the event
# protocol of docs/protocol.md, on the channel named by POOLSCOPE_EVENTS.
#
# It is loaded as `sitecustomize` from a private directory first on PYTHONPATH, does nothing
# unless POOLSCOPE_EVENTS is set, and then loads the sitecustomize the user already had.
# Python 3.8 or later. It only wraps the public `submit` of ThreadPoolExecutor and
# ProcessPoolExecutor; it never blocks the program: events are written in batches with
# non-blocking writes, and when the channel is full they are dropped and counted (the count
# is reported in a last line).

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
    import atexit
    import contextvars
    import functools
    import itertools
    import json
    import threading
    import time
    import types

    try:
        import concurrent.futures as cf
        from concurrent.futures import process as cf_process
    except Exception:
        return

    monotonic_ns = time.monotonic_ns
    dumps = json.dumps
    with_args = os.environ.get("POOLSCOPE_ARGS") == "1"
    max_chunk = 4000  # each write stays under PIPE_BUF (4096), so writes are atomic
    flush_every_s = 0.01  # a thread pool's events are written by a flusher thread this often
    max_buffered = 4096  # beyond this a worker writes itself, so memory stays bounded

    # Per process (reset in a forked child). `buf` is never rebound while threads append to it.
    buf = []
    st = {"fd": None, "pid": 0, "idp": "", "dropped": 0, "dead": False, "flusher": False,
          "lock": threading.Lock(), "tls": threading.local()}
    generation = [0]  # flushes begun: a task whose start is still unwritten reports once
    counter = itertools.count(1)
    names = {}

    def write(data):
        fd = st["fd"]
        if fd is None or st["dead"]:
            return False
        try:
            return os.write(fd, data) == len(data)
        except BlockingIOError:  # the channel is full: drop, never wait
            return False
        except OSError:  # the reader went away: stop trying
            st["dead"] = True
            return False

    def open_channel():
        st["pid"] = os.getpid()
        st["idp"] = "%d-" % st["pid"]
        try:
            st["fd"] = os.open(channel, os.O_WRONLY | os.O_NONBLOCK | os.O_APPEND | os.O_CLOEXEC)
        except OSError:
            st["fd"] = None  # nobody reading: every event is dropped and counted
            return
        # The first process writes the header; its children (any start method) inherit the
        # marker with the environment and only add events.
        if os.environ.get("_POOLSCOPE_STARTED") != "1":
            os.environ["_POOLSCOPE_STARTED"] = "1"
            write(('{"poolscope":1,"origin_ns":%d,"producer":"python-probe","pid":%d,'
                   '"python":"%s"}\n' % (monotonic_ns(), st["pid"], sys.version.split()[0])).encode())

    def encode(ev):
        kind = ev[0]
        if kind == "s":  # a start; with an end filled in, a whole task (task_ran)
            _, t, task, name, args, lane, end, queued = ev
            tail = lane[3]
            if queued is not None:
                tail = ',"queued_t":%d%s' % (queued, tail)
            if args is not None:
                tail = ',"args":%s%s' % (args, tail)
            if end is None:
                return '{"ev":"task_started","t":%d,"id":"%s","name":%s%s' % (t, task, name, tail)
            return '{"ev":"task_ran","t":%d,"end_t":%d,"id":"%s","name":%s%s' % (
                t, end, task, name, tail)
        if kind is None:  # a queued event told with its start instead
            return None
        if kind == "q":
            _, t, task, name, args = ev
            extra = "" if args is None else ',"args":%s' % args
            return '{"ev":"task_queued","t":%d,"id":"%s","name":%s%s}' % (t, task, name, extra)
        if kind == "f":
            return '{"ev":"task_finished","t":%d,"id":"%s"}' % (ev[1], ev[2])
        if kind == "x":
            return '{"ev":"task_failed","t":%d,"id":"%s","error":%s}' % (ev[1], ev[2], dumps(ev[3]))
        if kind == "w":
            pid, tid, thread, _ = ev[2]
            tid_part = "" if tid is None else ',"tid":%d' % tid
            return '{"ev":"worker_started","t":%d,"pid":%d%s,"name":%s}' % (
                ev[1], pid, tid_part, thread or dumps("PID %d" % pid))
        return '{"ev":"dropped","t":%d,"count":%d,"pid":%d}' % (ev[1], ev[2], st["pid"])

    def flush(wait=False):
        """Writes what is buffered, in chunks of whole lines under PIPE_BUF."""
        lock = st["lock"]
        if not lock.acquire(timeout=1.0) if wait else not lock.acquire(blocking=False):
            return  # another thread is writing; it or the next flush takes these too
        try:
            generation[0] += 1
            n = len(buf)
            events = buf[:n]
            del buf[:n]
            chunk, size = [], 0
            for ev in events:
                line = encode(ev)
                if line is None:
                    continue
                if size + len(line) + 1 > max_chunk and chunk:
                    if not write(("\n".join(chunk) + "\n").encode()):
                        st["dropped"] += len(chunk)
                    chunk, size = [], 0
                chunk.append(line)
                size += len(line) + 1
            if chunk and not write(("\n".join(chunk) + "\n").encode()):
                st["dropped"] += len(chunk)
        except Exception:  # never break the program: count what was lost
            st["dropped"] += len(buf)
            del buf[:]
        finally:
            lock.release()

    def flush_soon(_future=None):
        if buf:
            flush()

    def flusher():
        sleep = time.sleep
        while True:
            sleep(flush_every_s)
            if buf:
                flush()

    def start_flusher():
        """One daemon thread per process that runs thread-pool tasks writes their events, so
        the pool's threads never wait on the channel. Processes without one write inline."""
        if not st["flusher"]:
            st["flusher"] = True
            threading.Thread(target=flusher, name="poolscope-probe", daemon=True).start()

    function_type = types.FunctionType

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
        if not isinstance(name, str):
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

    def new_lane(tls, in_thread):
        """(pid, tid, thread name as JSON, and how task lines end) of the calling worker,
        announced on first use."""
        pid = st["pid"]
        if in_thread:
            tid, thread = threading.get_native_id(), dumps(threading.current_thread().name[:200])
            lane = (pid, tid, thread, ',"pid":%d,"tid":%d,"thread":%s}' % (pid, tid, thread))
            start_flusher()
        else:
            lane = (pid, None, None, ',"pid":%d}' % pid)
        tls.lane = lane
        buf.append(("w", monotonic_ns(), lane))
        return lane

    def run_task(meta, fn, *args, **kwargs):
        """Runs a submitted callable where the pool runs it, reporting its start and end."""
        task_id, name, shown, in_thread, queued, queued_gen = meta
        tls = st["tls"]
        lane = getattr(tls, "lane", None) or new_lane(tls, in_thread)
        gen = generation[0]
        queued_t = None
        if gen == queued_gen:  # the queued event is still unwritten: tell it with the start
            queued_t = queued[1]
            queued[0] = None
        ev = ["s", monotonic_ns(), task_id, name, shown, lane, None, queued_t]
        buf.append(ev)
        if not in_thread or len(buf) >= max_buffered:
            flush()  # a process worker writes its own events, at once
        try:
            result = fn(*args, **kwargs)
        except BaseException as e:
            text = ("%s: %s" % (type(e).__name__, e)).splitlines()
            buf.append(("x", monotonic_ns(), task_id, (text[0] if text else "")[:300]))
            if not in_thread:
                flush()
            raise
        end = monotonic_ns()
        ev[6] = end  # if the start is still unwritten, it goes out as one task_ran line
        if generation[0] != gen:
            buf.append(("f", end, task_id))  # it was written (or is being): report the end
        if not in_thread or len(buf) >= max_buffered:
            flush()
        return result

    # Process pools pickle the wrapped call by reference, under a module name of our own: the
    # user's sitecustomize, loaded after this one, takes over the name `sitecustomize`.
    run_task.__module__ = "_poolscope_probe"
    run_task.__qualname__ = run_task.__name__ = "_poolscope_run_task"
    probe = sys.modules[__name__]
    probe._poolscope_run_task = run_task
    sys.modules["_poolscope_probe"] = probe
    partial = functools.partial

    def wrap(cls, in_thread):
        original = cls.submit

        @functools.wraps(original)
        def submit(self, fn, /, *args, **kwargs):
            task_id = st["idp"] + str(next(counter))
            name = None
            if type(fn) is function_type:  # the common case, without a call
                name = names.get(fn.__qualname__)
            if name is None:
                name = task_name(fn)
            shown = dumps(shown_args(fn, args, kwargs)) if with_args else None
            queued = ["q", monotonic_ns(), task_id, name, shown]
            buf.append(queued)
            # A start may carry its queued event only in this process's own buffer.
            meta = (task_id, name, shown, True, queued, generation[0]) if in_thread else (
                task_id, name, shown, False, None, -1)
            task = partial(run_task, meta, fn)
            future = original(self, task, *args, **kwargs)
            if not in_thread:
                # The queued events go out when a task completes, from the executor's thread
                # (a process pool's workers are other processes, with their own buffers).
                future.add_done_callback(flush_soon)
            elif len(buf) >= max_buffered:
                flush()
            return future

        cls.submit = submit

    wrap(cf.ThreadPoolExecutor, True)
    wrap(cf_process.ProcessPoolExecutor, False)

    def at_exit():
        now = monotonic_ns()
        flush(wait=True)
        if st["dropped"]:
            dropped, st["dropped"] = st["dropped"], 0
            write((encode(("d", now, dropped)) + "\n").encode())

    atexit.register(at_exit)

    def after_fork():
        # The child shares the parent's channel; what the parent had buffered is its own.
        del buf[:]
        st.update(lock=threading.Lock(), tls=threading.local(), pid=os.getpid(),
                  idp="%d-" % os.getpid(), dropped=0, flusher=False)

    os.register_at_fork(after_in_child=after_fork)
    open_channel()


if os.environ.get("POOLSCOPE_EVENTS"):
    try:
        _install(os.environ["POOLSCOPE_EVENTS"])
    except Exception as _e:  # never break the program being watched
        sys.stderr.write("poolscope probe disabled: %s: %s\n" % (type(_e).__name__, _e))
_load_user_sitecustomize()
