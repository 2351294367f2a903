# poolscope's cluster watcher: follows a running Dask scheduler's or Ray cluster's tasks and
# writes them in poolscope's event protocol (docs/protocol.md) to POOLSCOPE_EVENTS.
#
# poolscope runs it as `PYTHON -I -c <this file> dask|ray ADDRESS [--for SECONDS]`, with a
# Python that has `distributed` or `ray` installed; -I keeps the program probe (and the rest
# of PYTHONPATH) out of it. See docs/cluster.md for why it polls and what that costs.
#
# It only reads: it submits no task, installs no plugin and leaves nothing behind in the
# cluster. Every problem that stops it is one line on stderr starting "poolscope: " and exit
# status 1; notes (a worker joined, left or died) are lines on stderr too.

import os
import sys
import time

CONNECT_TIMEOUT_S = 10  # an address that does not answer within this is an error
MIN_INTERVAL_S = 0.25  # polls are at least this far apart
MAX_INTERVAL_S = 5.0  # ...and at most this far, however slow the cluster answers
COST_SHARE = 20  # the interval is at least 20x the last poll: the cluster spends <= 5% on us
MAX_LINE = 4000  # each line and each write stays under PIPE_BUF
SEEN_KEPT = 65536
ASK_TIMEOUT_S = 10  # a worker asked for its threads answers within this, or is not waited for
RUNNING_SHOWN_AFTER_NS = 2_000_000_000  # a Ray task running this long is shown running
WORKER_REPORT_WAIT_S = 5.0  # Ray workers report task events every second by default  # task ids remembered so a record read twice is told once


class Fail(Exception):
    """Stops the watcher with one line."""


def note(text):
    sys.stderr.write("poolscope: %s\n" % text.replace("\n", " ")[:500])
    sys.stderr.flush()


def dumps(value):
    import json

    return json.dumps(value, ensure_ascii=False)


class Out:
    """The event channel: whole lines, written in chunks under PIPE_BUF. Blocking: when
    poolscope is behind, the watcher waits (the cluster does not)."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC) if path else 1
        self.buf = []
        self.size = 0
        self.wall_minus_mono = time.time_ns() - time.monotonic_ns()
        self.origin = time.monotonic_ns()
        self.clamped = 0

    def sync_clock(self):
        """Wall minus monotonic, read again before each poll (NTP may step the wall clock)."""
        self.wall_minus_mono = time.time_ns() - time.monotonic_ns()

    def mono(self, wall_ns):
        """A wall-clock time (ns since the epoch) on CLOCK_MONOTONIC, never before the
        origin (a task that began before the watch began starts at the watch's start)."""
        t = int(wall_ns) - self.wall_minus_mono
        if t < self.origin:
            self.clamped += 1
            return self.origin
        return t

    def line(self, text):
        data = text.encode("utf-8", "replace")[:MAX_LINE] + b"\n"
        if self.size + len(data) > MAX_LINE:
            self.flush()
        self.buf.append(data)
        self.size += len(data)

    def event(self, ev, t, **fields):
        parts = ['"ev":"%s"' % ev, '"t":%d' % t]
        for k, v in fields.items():
            if v is not None:
                parts.append('"%s":%s' % (k, dumps(v)))
        self.line("{" + ",".join(parts) + "}")

    def flush(self):
        if not self.buf:
            return
        data = b"".join(self.buf)
        self.buf, self.size = [], 0
        try:
            while data:
                n = os.write(self.fd, data)
                data = data[n:]
        except BrokenPipeError:
            sys.exit(0)  # poolscope has gone: so do we


def error_line(text):
    """One line of an error: the last non-empty line of a traceback-like text."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return (lines[-1] if lines else "error")[:300]


class Lanes:
    """Lanes announced so far (host, pid, tid), and the tasks each has run, for exits."""

    def __init__(self, out):
        self.out = out
        self.known = {}
        self.unplaced = 0

    def task(self, task_id, name, start, end, host, pid, tid, thread, error):
        """Tells a task: whole when it has ended, else only its start."""
        if start is None and pid is not None:
            start = end  # it ran between two polls and the cluster kept only its end
        if pid is None:
            if end is not None and error is not None:
                self.out.event("task_queued", end, id=task_id, name=name)
                self.out.event("task_failed", end, id=task_id, error=error)
            elif end is not None:
                self.unplaced += 1  # it ran, but the cluster no longer says where
            return
        lane = {"pid": pid, "tid": tid, "host": host, "thread": thread}
        self.known[(host, pid, tid)] = thread
        if end is not None and error is None:
            self.out.event("task_ran", start, end_t=end, id=task_id, name=name, **lane)
            return
        self.out.event("task_started", start, id=task_id, name=name, **lane)
        if end is not None:
            self.out.event("task_failed", end, id=task_id, error=error)

    def exited(self, host, pid, t, status):
        """Ends every lane of process `pid` on `host`."""
        for key in [k for k in self.known if k[0] == host and k[1] == pid]:
            del self.known[key]
            self.out.event("worker_exited", t, pid=pid, tid=key[2], host=host, status=status)


class Seen:
    """A bounded set of ids already told."""

    def __init__(self):
        from collections import deque

        self.order = deque()
        self.ids = set()

    def add(self, key):
        if key in self.ids:
            return False
        self.ids.add(key)
        self.order.append(key)
        if len(self.order) > SEEN_KEPT:
            self.ids.discard(self.order.popleft())
        return True


# ----------------------------------------------------------------------------------- Dask


def _worker_threads():
    """Runs on a Dask worker: its pid and its threads' native ids and names."""
    import os as _os
    import threading as _threading

    return {
        "pid": _os.getpid(),
        "threads": {t.ident: [t.native_id, t.name] for t in _threading.enumerate()},
    }


class Dask:
    """Follows a scheduler's task stream with an index cursor (one small call per poll for
    the tasks finished since the last), and its "all" event topic for workers joining and
    leaving. Worker thread ids come from the workers themselves, once per new thread."""

    def __init__(self, address, out):
        try:
            import distributed
            from dask.utils import key_split
        except ImportError:
            raise Fail("%s has no Dask 'distributed' package; choose a Python that has it "
                       "with --python PATH" % sys.executable)
        import logging

        logging.getLogger("distributed").setLevel(logging.CRITICAL)
        self.key_split = key_split
        self.out = out
        self.lanes = Lanes(out)
        self.seen = Seen()
        self.workers = {}  # address -> {"pid", "host", "threads": {ident: [tid, name]}, "asked"}
        self.gone = set()  # addresses of workers that left
        self.left = {}  # what was known of them
        self.events = []
        self.missed = 0
        try:
            self.client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S,
                                             set_as_default=False, name="poolscope-watch")
        except Exception as e:
            raise Fail("cannot reach the Dask scheduler at %s: %s" % (address, error_line(e)))
        try:
            self.cursor = self.client.sync(self.client.scheduler.get_task_stream_index)
        except Exception as e:
            raise Fail("the Dask scheduler at %s cannot give its task stream by index (%s); "
                       "poolscope needs distributed 2025.1 or later on the scheduler, this "
                       "Python has %s" % (address, error_line(e), distributed.__version__))
        self.client.subscribe_topic("all", self.on_event)
        info = self.client.scheduler_info(n_workers=-1)
        for addr in info.get("workers", {}):
            self.learn(addr)
        note("watching the Dask scheduler at %s: %d workers, %d threads" % (
            address, len(info.get("workers", {})),
            sum(w.get("nthreads", 0) for w in info.get("workers", {}).values())))

    def on_event(self, event):
        # Called on the client's event loop thread: only queue.
        self.events.append(event)

    def learn(self, addr, ident=None):
        """Asks worker `addr` for its pid and threads: at most once a second, or at once for
        a thread not asked about before (its executor makes threads as work comes)."""
        w = self.workers.setdefault(addr, {"pid": None, "host": host_of(addr), "threads": {},
                                           "asked": 0.0, "idents": set()})
        now = time.monotonic()
        new_ident = ident is not None and ident not in w["idents"] and len(w["idents"]) < 4096
        if new_ident:
            w["idents"].add(ident)
        if now - w["asked"] < 1.0 and not new_ident:
            return w
        w["asked"] = now
        if addr in self.gone:
            return w  # a worker that left answers nothing: never wait on it
        try:
            # Bounded: a worker that died meanwhile would leave an unbounded call hanging.
            got = self.client.sync(self.client._run, _worker_threads, workers=[addr],
                                   on_error="return", callback_timeout=ASK_TIMEOUT_S)
            info = got.get(addr)
            if isinstance(info, dict):
                w["pid"] = info["pid"]
                w["threads"].update(info["threads"])
        except Exception:
            pass  # the worker went away meanwhile; its records say what they can
        return w

    def poll(self):
        self.worker_events()
        client = self.client
        index = client.sync(client.scheduler.get_task_stream_index)
        records = client.sync(client.scheduler.get_task_stream, start_index=self.cursor)
        missed = max(0, index - self.cursor - len(records))
        if missed:
            self.missed += missed
            note("%d tasks finished while poolscope was behind and are not shown" % missed)
        self.cursor += missed + len(records)
        for rec in records:
            self.record(rec)

    def record(self, rec):
        key = rec.get("key")
        addr = rec.get("worker")
        stops = [s for s in rec.get("startstops") or () if s.get("action") == "compute"]
        if key is None or addr is None or not stops:
            return
        # (A stimulus id names a batch of messages, not one task: it cannot be the id.)
        if not self.seen.add((str(key), stops[0].get("start"))):
            return
        w = self.workers.get(addr) or self.left.get(addr) or self.learn(addr)
        ident = rec.get("thread")
        if ident not in w["threads"]:
            w = self.learn(addr, ident)
        # A worker that left before it told its pid: its failures still count (on no lane),
        # its other tasks are counted as not shown (Lanes.task).
        tid, thread = w["threads"].get(ident, [None, "thread %s" % ident])
        name = self.key_split(key)
        error = None
        if rec.get("status") == "error":
            error = exception_line(rec.get("exception_text") or "error")
        for i, s in enumerate(stops):
            task_id = "%s#%d" % (str(key)[:100], self.cursor_of(i))
            start = self.out.mono(s["start"] * 1e9)
            end = max(start, self.out.mono(s["stop"] * 1e9))
            self.lanes.task(task_id, name, start, end, w["host"], w["pid"], tid, thread,
                            error)

    def cursor_of(self, i):
        self._n = getattr(self, "_n", 0) + 1
        return self._n

    def worker_events(self):
        events, self.events = self.events, []
        for event in events:
            msg = event[1] if isinstance(event, (tuple, list)) and len(event) == 2 else event
            if not isinstance(msg, dict):
                continue
            action, addr = msg.get("action"), msg.get("worker")
            if action == "add-worker" and addr:
                w = self.learn(addr)
                note("worker %s joined (PID %s)" % (addr, w["pid"]))
            elif action == "remove-worker" and addr:
                self.removed(addr, msg)

    def removed(self, addr, msg):
        w = self.workers.pop(addr, None)
        if len(self.gone) >= SEEN_KEPT:
            self.gone.clear()
            self.left.clear()
        self.gone.add(addr)
        if w is not None:
            self.left[addr] = w  # its last records may still come
        lost = msg.get("processing-tasks") or ()
        if msg.get("expected"):
            status, what = None, "left"
        else:
            status = "died"
            if lost:
                status = "died with %d tasks running" % len(lost)
            what = status
        note("worker %s %s" % (addr, what))
        if w and w["pid"] is not None:
            self.lanes.exited(w["host"], w["pid"], time.monotonic_ns(), status)

    def close(self):
        try:
            self.client.close(timeout=2)
        except Exception:
            pass


def host_of(address):
    rest = address.split("://", 1)[-1]
    host = rest.rsplit(":", 1)[0] if ":" in rest else rest
    return host.strip("[]") or None


def exception_line(text):
    """Dask's `exception_text` is a repr: `ValueError('bad 3')` -> `ValueError: bad 3`."""
    import re

    m = re.match(r"^([A-Za-z_][\w.]*)\((['\"])(.*)\2\)$", text.strip(), re.S)
    if m:
        return error_line("%s: %s" % (m.group(1), m.group(3)))
    return error_line(text)


# ------------------------------------------------------------------------------------ Ray


class Ray:
    """Reads the task events the GCS holds (the same the Ray dashboard reads), without
    joining the cluster as a driver. The GCS keeps a bounded number of tasks (100 000 by
    default); each poll reads them, so polls are spaced COST_SHARE times their own cost."""

    def __init__(self, address, out):
        try:
            import ray
            from ray._private import state
            from ray._raylet import GcsClientOptions
            from ray.core.generated import common_pb2, gcs_pb2
        except ImportError as e:
            raise Fail("%s has no usable 'ray' package (%s); choose a Python that has it "
                       "with --python PATH" % (sys.executable, error_line(e)))
        major_minor = tuple(int(p) for p in ray.__version__.split(".")[:2] if p.isdigit())
        if major_minor < (2, 40):
            raise Fail("ray %s is not supported: poolscope needs ray 2.40 or later"
                       % ray.__version__)
        self.gcs_pb2 = gcs_pb2
        status = common_pb2.TaskStatus
        self.running_state = status.Value("RUNNING")
        self.ended_states = {status.Value("FINISHED"): None, status.Value("FAILED"): "failed"}
        self.driver_type = common_pb2.TaskType.Value("DRIVER_TASK")
        self.out = out
        self.lanes = Lanes(out)
        self.nodes = {}
        self.running = {}  # task key -> (host, pid)
        self.told = set()  # task keys ended and told (only those the GCS still holds)
        self.worker_pids = {}  # worker id -> pid, for tasks only their owner reported
        self.workers_read = 0.0
        self.pid_hosts = {}  # worker pid -> node, for events that name only one of them
        self.waiting = {}  # task key -> when its end was seen without its worker's report
        self.first = True
        self.polls = 0
        gcs = address
        if address == "auto":
            from ray._private.services import canonicalize_bootstrap_address

            gcs = canonicalize_bootstrap_address("auto")
            if not gcs:
                raise Fail("no Ray cluster found on this machine (ray start --head?)")
        self.address = gcs
        g = state.GlobalState()
        g._initialize_global_state(GcsClientOptions.create(
            gcs, None, allow_cluster_id_nil=True, fetch_cluster_id_if_nil=False))
        self.accessor = within(CONNECT_TIMEOUT_S, g._connect_and_get_accessor,
                               "cannot reach the Ray cluster at %s" % address)
        self.state = g
        within(CONNECT_TIMEOUT_S, self.refresh_nodes,
               "cannot reach the Ray cluster at %s" % address)
        note("watching the Ray cluster at %s: %d nodes" % (gcs, len(self.nodes)))

    def refresh_nodes(self):
        for n in self.state.node_table():
            self.nodes[n["NodeID"]] = n.get("NodeManagerAddress") or n["NodeID"][:8]

    def poll(self):
        started = time.monotonic()
        raw = self.accessor.get_task_events()
        present = set()
        for data in raw:
            ev = self.gcs_pb2.TaskEvents.FromString(data)
            key = "%s-%d" % (ev.task_id.hex(), ev.attempt_number)
            present.add(key)
            if key not in self.told:
                self.task(key, ev)
        # The GCS forgets old tasks; so do we. Memory stays bounded by what it holds.
        self.told &= present
        self.waiting = {k: v for k, v in self.waiting.items() if k in present}
        self.first = False
        self.polls += 1
        if self.polls % 4 == 1:
            self.worker_exits()
        return time.monotonic() - started

    def task(self, key, ev):
        if ev.task_info.type == self.driver_type:
            self.told.add(key)
            return
        su = ev.state_updates
        times = su.state_ts_ns
        end_state = next((s for s in self.ended_states if s in times), None)
        if self.first and end_state is not None:
            self.told.add(key)  # ended before the watch began
            return
        start = times.get(self.running_state)
        if start is None and end_state is None:
            return  # still waiting: shown once it runs
        pid = su.worker_pid or None
        if pid is None and su.worker_id:
            pid = self.worker_pid(su.worker_id.hex())
        host = self.host(su.node_id.hex()) if su.node_id else None
        host = host or ev.profile_events.node_ip_address or self.pid_hosts.get(pid)
        if pid is not None and host is not None and len(self.pid_hosts) < SEEN_KEPT:
            self.pid_hosts[pid] = host
        if (end_state is not None and (start is None or pid is None or host is None)
                and key not in self.running):
            # The owner reports the end, the worker the start: wait a little for the latter.
            first = self.waiting.setdefault(key, time.monotonic())
            if time.monotonic() - first < WORKER_REPORT_WAIT_S:
                return
        self.waiting.pop(key, None)
        if key in self.running:
            host, pid = self.running[key]
        name = ev.task_info.func_or_class_name or ev.task_info.name or "task"
        error = None
        if end_state is not None and self.ended_states[end_state]:
            error = ray_error(su.error_info)
        end = times[end_state] if end_state is not None else None
        for p in ev.profile_events.events:
            if p.event_name == "task:execute":  # the worker's own stamps around the call
                start = p.start_time
                if end is not None:
                    end = p.end_time
        mono = self.out.mono
        start_t = mono(start) if start is not None else None
        end_t = max(start_t or 0, mono(end)) if end is not None else None
        task_id = key
        if key in self.running:
            if end_t is not None:  # its start was told: now its end
                del self.running[key]
                if error is None:
                    self.out.event("task_finished", end_t, id=task_id)
                else:
                    self.out.event("task_failed", end_t, id=task_id, error=error)
                self.told.add(key)
            return
        if (pid is None or host is None) and end_t is None:
            return  # no worker known yet: next poll
        if end_t is None and time.time_ns() - start < RUNNING_SHOWN_AFTER_NS:
            # Ray's RUNNING stamp comes before the arguments are fetched (hundreds of ms on
            # a busy node): a short task waits for its end, which brings the worker's exact
            # execute span; only a long one is shown running from that stamp.
            return
        if end_t is None:
            self.running[key] = (host, pid)
        else:
            self.told.add(key)
        self.lanes.task(task_id, name, start_t, end_t, host, pid, None, None, error)

    def worker_pid(self, worker_id):
        """A worker's pid from the GCS worker table (read again at most once a second)."""
        if worker_id not in self.worker_pids and time.monotonic() - self.workers_read > 1.0:
            self.workers_read = time.monotonic()
            for data in self.accessor.get_worker_table():
                w = self.gcs_pb2.WorkerTableData.FromString(data)
                if w.pid and len(self.worker_pids) < SEEN_KEPT:
                    self.worker_pids[w.worker_address.worker_id.hex()] = w.pid
        return self.worker_pids.get(worker_id)

    def host(self, node_id):
        if node_id not in self.nodes:
            self.refresh_nodes()
        return self.nodes.get(node_id, node_id[:8])

    def worker_exits(self):
        """Lanes whose worker process the GCS says has gone, with how, when not normal."""
        known = {(h, p) for (h, p, _t) in self.lanes.known}
        if not known:
            return
        normal = {"INTENDED_SYSTEM_EXIT", "INTENDED_USER_EXIT"}
        for data in self.accessor.get_worker_table():
            w = self.gcs_pb2.WorkerTableData.FromString(data)
            host = self.host(w.worker_address.node_id.hex())
            if w.is_alive or (host, w.pid) not in known:
                continue
            kind = ""
            if w.HasField("exit_type"):
                enum = w.DESCRIPTOR.fields_by_name["exit_type"].enum_type
                kind = enum.values_by_number[w.exit_type].name
            status = None if kind in normal else error_line(w.exit_detail or kind or "died")
            note("worker PID %d on %s exited%s" % (w.pid, host,
                                                   "" if status is None else ": " + status))
            end = self.out.mono(w.end_time_ms * 1_000_000) if w.end_time_ms else \
                time.monotonic_ns()
            for key, (h, p) in list(self.running.items()):
                if (h, p) == (host, w.pid):
                    del self.running[key]
                    self.out.event("task_failed", end, id=key,
                                   error="the worker died: %s" % (status or "exited"))
            self.lanes.exited(host, w.pid, end, status)

    def close(self):
        pass


def ray_error(info):
    kind = ""
    try:
        from ray.core.generated import common_pb2

        kind = common_pb2.ErrorType.Name(info.error_type)
    except Exception:
        pass
    if kind == "TASK_EXECUTION_EXCEPTION" or not kind:
        return error_line(info.error_message or kind or "failed")
    first = (info.error_message or "").strip().splitlines()
    return ("%s: %s" % (kind, first[0] if first else ""))[:300]


def within(seconds, fn, what):
    """Runs `fn` on a thread, failing with `what` if it takes longer than `seconds` (a
    client library may retry an address that does not answer for minutes)."""
    import threading

    result = {}

    def run():
        try:
            result["value"] = fn()
        except BaseException as e:  # reported below
            result["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise Fail("%s: no answer within %d s" % (what, seconds))
    if "error" in result:
        raise Fail("%s: %s" % (what, error_line(result["error"])))
    return result.get("value")


# ----------------------------------------------------------------------------------- main


def main(argv):
    if len(argv) < 3 or argv[1] not in ("dask", "ray"):
        raise Fail("usage: watch dask|ray ADDRESS [--for SECONDS]")
    kind, address = argv[1], argv[2]
    duration = None
    if "--for" in argv:
        duration = float(argv[argv.index("--for") + 1])
    out = Out(os.environ.get("POOLSCOPE_EVENTS"))
    out.line('{"poolscope":1,"origin_ns":%d,"producer":"poolscope-%s-watch","pid":%d,'
             '"python":"%s"}' % (out.origin, kind, os.getpid(), sys.version.split()[0]))
    out.flush()
    watcher = Dask(address, out) if kind == "dask" else Ray(address, out)
    deadline = None if duration is None else time.monotonic() + duration
    interval = MIN_INTERVAL_S
    try:
        while True:
            out.sync_clock()
            began = time.monotonic()
            if kind == "ray":
                cost = within(60, watcher.poll, "the Ray cluster at %s stopped answering"
                              % address)
            else:
                try:
                    watcher.poll()
                except Exception as e:
                    raise Fail("the Dask scheduler at %s stopped answering: %s"
                               % (address, error_line(e)))
                cost = time.monotonic() - began
            out.flush()
            interval = min(MAX_INTERVAL_S, max(MIN_INTERVAL_S, cost * COST_SHARE))
            if deadline is not None and time.monotonic() >= deadline:
                break
            pause = interval if deadline is None else min(interval, deadline - time.monotonic())
            time.sleep(max(0.0, pause))
    finally:
        out.flush()
        watcher.close()
    if watcher.lanes.unplaced:
        note("%d tasks ended on workers the cluster no longer names, or that left before "
             "they told their PID; not shown" % watcher.lanes.unplaced)
    if out.clamped:
        note("%d task starts before the watch began are shown at its start" % out.clamped)


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        main(sys.argv)
    except Fail as e:
        note("error: %s" % e)
        sys.stdout.flush()
        os._exit(1)
    except KeyboardInterrupt:
        pass
    sys.stdout.flush()
    os._exit(0)  # never wait for a client library's threads
