# The channel to poolscope: a buffer of events per process, turned into JSON lines and
# written to the FIFO named by POOLSCOPE_EVENTS in whole-line chunks under PIPE_BUF, so the
# writes of several processes never interleave inside a line (docs/protocol.md).
#
# It never blocks the program: writes are non-blocking. Events are written by one daemon
# flusher thread per process, which may wait (up to PATIENCE_S at a time) for room when the FIFO
# is full, while the program goes on; a thread of the program never waits: when it must
# write and cannot, or more than MAX_HELD events wait, lines are dropped and counted (the
# count goes out in a `dropped` line as soon as lines go again).
#
# The descriptor cannot be confused with the program's: it is close-on-exec, moved to a high
# number, and checked against the FIFO's device and inode before every write (a program that
# closed it and opened a file of its own under the same number gets nothing written into it;
# the channel is reopened instead). JSON is written by hand: the probe runs before the
# program and must not import `json` (a program's own json.py would then be shadowed).

import os
import sys
import threading
import time

from .native import fast

monotonic_ns = time.monotonic_ns
MAX_CHUNK = 4000  # each write stays under PIPE_BUF (4096), so writes are atomic
# How often the flusher thread writes: often where pool threads run tasks; less often in a
# process worker, whose own thread runs the task and would have to share the GIL with it
# (its ends are written by itself: only starts of tasks longer than this wait for the
# flusher, so a worker that dies in a task's first 20 ms leaves that task unattributed).
# Either way the flusher's work is per batch, not per task (lines.py).
FLUSH_THREADS_S = 0.005
FLUSH_PROCESS_S = 0.02
MAX_HELD = 100000  # events kept while the flusher waits for room; more are dropped
# How long the flusher waits for room in a full channel before it drops a batch: poolscope on
# a loaded machine can fall seconds behind, while the program goes on (held events are
# bounded by MAX_HELD). At exit, the lock is waited for longer than this (see at_exit).
PATIENCE_S = 5.0

# What this process has to write, in the order it happened. `buf` is never rebound while
# threads append to it. Its records are tuples, or the packed records of a thread pool's
# quick path: bytes (lines.py), or chunks of them (bytearray: fast.c, which writes into the
# last entry while it is a chunk with room; records_held() counts their records).
buf = []
st = {"path": None, "fd": None, "ino": None, "pid": 0, "dropped": 0, "dead": False,
      "flusher": False, "lock": threading.Lock(), "period": FLUSH_PROCESS_S, "header": None,
      "taken": monotonic_ns(), "before": monotonic_ns(), "lost_t": None}

_ESCAPES = {i: "\\u%04x" % i for i in range(32)}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", 8: "\\b", 9: "\\t", 10: "\\n",
                 12: "\\f", 13: "\\r"})


def records_held():
    """The records the buffer holds (a chunk counts as its records)."""
    return fast.held(buf) if fast else len(buf)


def released(entries):
    """Entries just taken out of the buffer: they are no longer held; their records."""
    return fast.released(entries) if fast else len(entries)


def jstr(text):
    """`text` as a JSON string (what json.dumps would give, without importing json)."""
    if not isinstance(text, str):
        text = str(text)
    return '"' + text.translate(_ESCAPES) + '"'


def _high_fd(fd):
    """Moves `fd` to a high, free descriptor number (close-on-exec), out of the way of a
    program that counts on low numbers; returns the number it has now."""
    try:
        top = min(os.sysconf("SC_OPEN_MAX"), 4096) - 1
    except (ValueError, OSError):
        top = 1023
    for target in range(top, max(top - 64, fd), -1):
        try:
            os.fstat(target)
            continue  # in use
        except OSError:
            pass
        try:
            os.dup2(fd, target, inheritable=False)
        except OSError:
            return fd
        os.close(fd)
        return target
    return fd


def open_channel():
    """Opens the FIFO for this process (after a fork, the child opens its own)."""
    st["pid"] = os.getpid()
    st["fd"] = st["ino"] = None
    try:
        fd = os.open(st["path"], os.O_WRONLY | os.O_NONBLOCK | os.O_APPEND | os.O_CLOEXEC)
    except OSError:
        return  # nobody reading: every event is dropped and counted
    try:
        s = os.fstat(fd)
        st["ino"] = (s.st_dev, s.st_ino)
        st["fd"] = _high_fd(fd)
    except OSError:
        os.close(fd)


def _fd():
    """The channel's descriptor, if it is still the FIFO we opened (else reopened)."""
    fd = st["fd"]
    if fd is not None:
        try:
            s = os.fstat(fd)
            if (s.st_dev, s.st_ino) == st["ino"]:
                return fd
        except OSError:
            pass
        st["fd"] = None  # the program closed it (and perhaps reused the number): not ours
    if st["dead"] or st["path"] is None:
        return None
    open_channel()
    return st["fd"]


def write(data, until=0):
    """Writes whole lines at once, or not at all; False when they were not written. When the
    channel is full, a background thread may wait for room `until` that monotonic time; a
    thread of the program never waits (`until` 0)."""
    if st["dead"]:
        return False
    fd = _fd()
    if fd is None:
        return False
    header, st["header"] = st["header"], None
    if header is not None and not write(header, until):
        st["header"] = header  # it goes first, or nothing does
        return False
    while True:
        try:
            n = os.write(fd, data)
        except BlockingIOError:  # the channel is full: drop, or wait a little
            if monotonic_ns() >= until:
                return False
            time.sleep(0.0005)
            continue
        except OSError:  # the reader went away: stop trying
            st["dead"] = True
            return False
        if n == len(data):
            return True
        # Only a plain file (not a FIFO, whose writes under PIPE_BUF are whole) writes part:
        # the rest must follow, or the next line would be glued to a cut one.
        data = data[n:]
        until = max(until, monotonic_ns() + 1_000_000_000)


def write_header():
    """The first process writes the header; its children (any start method) inherit the
    marker with the environment and only add events. A header that cannot be written yet (a
    FIFO nobody reads yet) goes first once lines go (write()): without it, nothing after it
    could be read."""
    if os.environ.get("_POOLSCOPE_STARTED") != "1":
        os.environ["_POOLSCOPE_STARTED"] = "1"
        origin = monotonic_ns()
        # A loss before the first batch is stamped at the origin, not before it (lost()).
        st["taken"] = st["before"] = origin
        st["header"] = ('{"poolscope":1,"origin_ns":%d,"producer":"python-probe","pid":%d,'
                        '"python":"%s"}\n' % (origin, st["pid"], sys.version.split()[0])).encode()
        write(b"")


def _send(data, until):
    """Writes `data` (whole lines) in chunks of whole lines under PIPE_BUF bytes; counts the
    lines of a chunk that could not be written, and of the chunks after it."""
    start, size = 0, len(data)
    while start < size:
        end = data.rfind(b"\n", start, start + MAX_CHUNK) + 1
        if end <= start:  # a line longer than a chunk (the probe makes none): alone
            end = data.find(b"\n", start) + 1 or size
        if not write(data[start:end], until):
            lost(data.count(b"\n", start, size))  # and the rest: see _send_lines
            return False
        start = end
    return True


def lost(count, held=False):
    """Counts `count` lines dropped: of the batch being sent, or (`held`) events held after
    it. The first since the count was last told stamps when the loss began, the batch taken
    before them (`t` of the `dropped` line: a replay puts the count where the gap begins)."""
    st["dropped"] += count
    if st["lost_t"] is None:
        st["lost_t"] = st["taken"] if held else st["before"]


def _tell_dropped(until=0):
    """Says how many lines were dropped, as soon as the channel takes lines again."""
    dropped, at = st["dropped"], st["lost_t"]
    if write(('{"ev":"dropped","t":%d,"count":%d,"pid":%d}\n'
              % (monotonic_ns() if at is None else at, dropped, st["pid"])).encode(), until):
        st["dropped"] -= dropped
        st["lost_t"] = None


def _unformatted(events, lines, final, taken):
    """Until lines.py is loaded there are no records to format."""


def _unsent(sent):
    """Nor lines to confirm."""


def _nothing(events):
    """Nor records whose loss matters more than their count."""


# What turns a batch of records into lines: `formatter(events, lines, final, taken)`, each
# line a string or, for packed records, their line as bytes with their count; and what learns
# whether a batch's lines were written: `after_send(sent)` (lines.py).
formatter = _unformatted
after_send = _unsent
# And what learns of records lost without being formatted: `unformatted(records)`.
unformatted = _nothing


def _send_lines(lines, until):
    """Writes `lines` (see formatter) in order. Once a write fails, the lines after it are
    counted lost, not written: one of them may need a line that was lost (a packed record,
    the line naming it: lines.name_now); False then."""
    text = []
    for i, line in enumerate(lines):
        if type(line) is str:
            text.append(line)
            continue
        sent = _send_text(text, until)  # which counts its own lost lines
        text = []
        if not sent or not write(line[0], until):
            lost(sum(1 if type(rest) is str else rest[1] for rest in lines[i:]))
            return False
    return _send_text(text, until)


def _send_text(text, until):
    """Writes the lines `text` (strings, without their newlines), if any."""
    if not text:
        return True
    text.append("")
    return _send("\n".join(text).encode("utf-8", "replace"), until)


def flush(wait=False, patience_s=0.0, wait_s=2.0, final=False):
    """Writes what is buffered. `wait`: for the lock, at most `wait_s`; `patience_s`: for room
    in a full channel (only threads of the probe's own); `final`: the process is ending, so
    nothing is held back for a later batch. False when the lock was not had."""
    lock = st["lock"]
    if not (lock.acquire(timeout=wait_s) if wait else lock.acquire(blocking=False)):
        # Another thread is writing; it or the next flush takes these. Memory stays bounded
        # while it waits for room: past MAX_HELD events the oldest are dropped and counted.
        # (As many entries as records over: a chunk is more, all counted.)
        excess = records_held() - MAX_HELD
        if excess > 0:
            gone = buf[:excess]
            del buf[:excess]
            lost(released(gone), held=True)
            unformatted(gone)
        return False
    until = monotonic_ns() + int(patience_s * 1e9) if patience_s else 0
    try:
        taken = monotonic_ns()  # before the batch is taken: see lines.py
        st["before"], st["taken"] = st["taken"], taken
        n = len(buf)  # whole records: each is one append (or a chunk of them)
        events = buf[:n]
        del buf[:n]
        count = released(events)
        lines = []
        try:
            formatter(events, lines, final, taken)
        except Exception:  # never break the program: count what was lost (all of the batch)
            lost(count)
            unformatted(events)
            after_send(False)
            return True
        ok = _send_lines(lines, until)
        after_send(ok)
        if ok and st["dropped"]:
            _tell_dropped(until)
    except Exception:  # never break the program: count what was lost
        lost(1)
    finally:
        lock.release()
    return True


def _flusher():
    sleep = time.sleep
    while True:
        sleep(st["period"])
        flush(patience_s=PATIENCE_S)


def start_flusher(threads=False):
    """One daemon thread per process writes the events of threads, so they never wait on the
    channel. Started on first need; `threads`: pool threads run tasks here."""
    if threads:
        st["period"] = FLUSH_THREADS_S
    if not st["flusher"]:
        st["flusher"] = True
        threading.Thread(target=_flusher, name="poolscope-probe", daemon=True).start()


def at_exit():
    # The lock waits out a flusher waiting for room (it writes or counts what it holds, in at
    # most PATIENCE_S and its formatting of a big batch, which on a loaded machine can take
    # seconds). It is a daemon thread: whatever it holds when the interpreter ends is lost,
    # so wait it out; past that, what is still buffered is counted as dropped.
    if not flush(wait=True, patience_s=1.0, wait_s=PATIENCE_S + 10.0, final=True):
        lost(records_held(), held=True)  # the flusher is stuck: what it holds is lost, but counted
    if st["dropped"]:
        _tell_dropped(monotonic_ns() + 1_000_000_000)


def _after_fork():
    # The child shares the parent's descriptor (the same open FIFO); what the parent had
    # buffered is the parent's to write (and fast.c counts none held: tasks._after_fork).
    del buf[:]
    st.update(lock=threading.Lock(), dropped=0, flusher=False, pid=os.getpid(),
              period=FLUSH_PROCESS_S, header=None, taken=monotonic_ns(),
              before=monotonic_ns(), lost_t=None)


def install(path):
    import atexit

    st["path"] = path
    open_channel()
    write_header()
    atexit.register(at_exit)
    os.register_at_fork(after_in_child=_after_fork)
