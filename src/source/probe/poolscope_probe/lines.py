# Records to JSON lines (docs/protocol.md), done by the flusher thread for a whole batch, so
# a task's own thread does as little as it can: it appends one tuple when the task is handed
# to a pool (a `queued` record) and one when the task ends (a `ran` or `failed` record), and
# keeps the task it is running in its lane's slot.
#
# Here, under the channel's lock, a batch becomes as few lines as it can:
# - a task that ran, whose queued record is in this batch or the one before, is one
#   `task_ran` line carrying its queue time; a queued record left over after two batches goes
#   out as `task_queued` (a deep queue shows as queued);
# - a task still running in a lane's slot REPORT_AFTER_NS after its start goes out as
#   `task_started` (with its queue time if that was not yet told), and its end later as
#   `task_finished`/`task_failed`. A worker clears its slot before it appends its end, so a
#   task seen in a slot has not ended in any batch already taken; and only a task that
#   started before the batch was taken is reported, so its queued record (appended before the
#   task was handed over) is in this batch or an earlier one: a `task_queued` line never
#   follows its task's start (poolscope would take it for a new task);
# - a task queued for another process (a process pool's) cannot be merged here: its queued
#   record goes out at once (`queued_now`), before that process can report the task.
#
# Records are tuples whose first item says what they are: RAN and QUEUED are their own line's
# format (its `%.0s` swallows that first item); anything else is a function that writes the
# record's lines.
#
# The quick path of a thread pool (futures.py) formats nothing per task: a task of a plain
# function is queued and ends as packed records (pack_queued, pack_ran) from the function's
# second task on, once its name has a number (name_now), which the flusher writes as they
# are, each run of them in `packed` lines (their bytes as hex) in its place among the other
# lines; poolscope reads them as the task_queued and task_ran lines they stand for, with id
# `<pid>-<n>` (docs/protocol.md). The `name` line goes before them, and none of them is
# written once it was lost: a record is never nameless.

# The C module under `struct` (a program's own struct.py cannot shadow it).
import sys
import threading
from _struct import Struct

from . import channel
from .channel import jstr, monotonic_ns
from .native import fast

bytes_type = bytes

# A task still running this long after its start is reported started at the next flush.
REPORT_AFTER_NS = 1_000_000
MAX_REPORTED = 65536  # tasks told started and not yet ended (a bound against lost ends)

# (t0, t1, cpu, id, label, lane): cpu is `,"cpu_ns":N` or "" (not measured), label the JSON of
# `name` (and `args`), lane the JSON of `pid` (and `tid`) after a comma.
RAN = '%.0s{"ev":"task_ran","t":%d,"end_t":%d%s,"id":"%s","name":%s%s}'
_RAN_Q = '%.0s{"ev":"task_ran","t":%d,"end_t":%d%s,"id":"%s","name":%s%s,"queued_t":%d}'
# (t, id, label)
QUEUED = '%.0s{"ev":"task_queued","t":%d,"id":"%s","name":%s}'
_STARTED = '{"ev":"task_started","t":%d,"id":"%s","name":%s%s}'
_STARTED_Q = '{"ev":"task_started","t":%d,"id":"%s","name":%s%s,"queued_t":%d}'
_FINISHED = '{"ev":"task_finished","t":%d,"id":"%s"%s}'
_FAILED = '{"ev":"task_failed","t":%d,"id":"%s"%s,"error":%s}'

# Packed records, little endian, their kind in their first byte: (task << 8 | PACKED_QUEUED,
# t) in 16 bytes, and (task << 8 | PACKED_RAN, t0, t1, cpu_ns or -1, tid) in 36, where `task`
# is the packed task's int (see NAME_BITS). Packed by the native byte order where that is
# little endian: the struct module then takes each int as a C long long, where the standard
# order converts it byte by byte. The kinds 1 and 2 (`name` and `n` in fields of their own,
# 19 and 39 bytes) were this probe's before; poolscope still reads them. `name` fits 10
# bits, a Linux tid 32 (else the task is not packed: tasks._new_lane). fast.c makes the same.
PACKED_QUEUED, PACKED_RAN = 3, 4
_ORDER = "@" if sys.byteorder == "little" else "<"
pack_queued = Struct(_ORDER + "Qq").pack
pack_ran = Struct(_ORDER + "QqqqI").pack
PER_LINE = 48  # packed records per line: at most 48 × 36 bytes as hex, one write under PIPE_BUF
MAX_PACKED_NAMES = 1024  # names of packed tasks, with those on their way
# A packed task, from its queuing to its end, is one int: `number << NAME_BITS | n` (its
# number in the process and its name's n). An int, not a tuple, since a tuple per task is an
# object the garbage collector tracks: with 20 000 work items alive, one more each made
# CPython's full collection run where it mostly did not, and doubled the probe's cost of
# making a work item (2.1 against 1.0 µs; issue 17). While it runs, its lane's slot holds it,
# and its start in slot[6], written first: a flusher that reads the task, its start and then
# the same task again has read that task's start.
NAME_BITS = 10
NAME_MASK = (1 << NAME_BITS) - 1
assert MAX_PACKED_NAMES <= 1 << NAME_BITS

# Names of packed tasks, kept by the functions' code, not the functions: a function made
# again and again (a lambda in a loop) is one name, and no function, nor what its closure
# holds, is kept alive. `names[n]` is the name as JSON, `quals[n]` the __qualname__ it was
# made from (a wrapper's code named otherwise is not packed); `indexed` each code's n by the
# code's id, from its function's first task on (name_now). By id, since a code object's hash
# is computed anew at each lookup, from all its constants and names: a big function's cost
# per task; the code is kept alive (`_codes`), so its id is not another's.
names = []
quals = []
indexed = {}
_codes = []
_naming = threading.Lock()  # numbers are given in program threads
inherited = [0]  # names below this n are a parent process's (after_fork)
_announced = []  # the n of each name line in the batch being sent
_again = []  # names whose line may not have been written: written first in the next batch

# Queued records waiting for their task's start, by task id: this batch's and the last one's.
_pending = [{}, {}]
_reported = set()  # ids of tasks told started, whose end is still to come
slots = []  # each worker thread's slot (tasks._new_lane())


def _queue_time(task_id):
    """The queue time of a task still pending, taken out (None once told or unknown)."""
    new, old = _pending
    q = new.pop(task_id, None) if new else None
    if q is None and old:
        q = old.pop(task_id, None)
    return None if q is None else q[1]


def _started_line(task_id, label, lane, t0, out):
    q = _queue_time(task_id)
    if q is None:
        out.append(_STARTED % (t0, task_id, label, lane))
    else:
        out.append(_STARTED_Q % (t0, task_id, label, lane, q))


def failed(rec, out):
    """(failed, t0, t1, cpu as RAN's, id, label, lane, error as JSON)"""
    _, t0, t1, cpu, task_id, label, lane, error = rec
    if task_id in _reported:
        _reported.discard(task_id)
    else:
        _started_line(task_id, label, lane, t0, out)
    out.append(_FAILED % (t1, task_id, cpu, error))


def failed_packed(rec, out):
    """failed's record, then the worker's slot and its task as the slot held it: a packed
    task, told started from the slot (by this thread: see _report_running) or not."""
    if rec[8][4] == rec[9]:
        _reported.add(rec[4])
    failed(rec[:8], out)


def queued_now(rec, out):
    """(queued_now, t, id, label): a task handed to another process."""
    out.append(QUEUED % rec)


def worker(rec, out):
    """(worker, t, the lane's JSON fields)"""
    out.append('{"ev":"worker_started","t":%d,%s}' % (rec[1], rec[2]))


def packed_name(fn):
    """The n of a plain function's name if its tasks may be packed, else None."""
    n = indexed.get(id(fn.__code__))
    if n is not None and fn.__qualname__ == quals[n]:
        return n
    return None


def may_name(fn):
    """Whether a plain function's name should be numbered for its tasks to be packed."""
    return id(fn.__code__) not in indexed and len(names) < MAX_PACKED_NAMES


def name_now(fn, text):
    """Numbers the name of the plain function `fn` (`text`, as JSON), for its tasks to be
    packed from its next one on. Its record is appended before `indexed` says so, so its
    line goes out before any record of them; a write that fails loses the
    rest of its batch (channel._send_lines), and the line goes again first (after_send)."""
    code = fn.__code__
    with _naming:
        if id(code) in indexed or len(names) >= MAX_PACKED_NAMES:
            return
        n = len(names)
        names.append(text)
        quals.append(fn.__qualname__)
        _codes.append(code)
        channel.buf.append((name, n))
        indexed[id(code)] = n


def name(rec, out):
    """(name, n): the line giving the name of packed tasks' n (name_now)."""
    n = rec[1]
    out.append('{"ev":"name","pid":%d,"n":%d,"name":%s}' % (channel.st["pid"], n, names[n]))
    _announced.append(n)


def after_send(sent):
    """Names whose line may not have been written (their batch was not) are written again,
    first in the next batch: packed records that need them come after."""
    if not sent:
        _again.extend(_announced)
    del _announced[:]


def unformatted(events):
    """Records lost before they were made lines (dropped while the flusher waited for room):
    the names among them are written again, first in the next batch."""
    _again.extend(rec[1] for rec in events if type(rec) is tuple and rec[0] is name)


def pack(records, out):
    """Appends the `packed` lines of a run of packed records (bytes, or fast.c's chunks of
    them, which only fast.pack reads), with their counts."""
    head = '{"ev":"packed","pid":%d,"r":"' % channel.st["pid"]
    if fast:
        fast.pack(records, head.encode(), PER_LINE, out)
        return
    for i in range(0, len(records), PER_LINE):
        part = records[i:i + PER_LINE]
        out.append(((head + b"".join(part).hex() + '"}\n').encode(), len(part)))


def runs(events):
    """Where `events`' runs of tuples and of packed records begin, alternately, tuples first
    (a run may be empty), and their end: `[0, …, len(events)]`. Found by C code (list.index
    over their types), not a loop over each: a busy thread pool's batch is thousands."""
    if fast:
        return fast.runs(events, bytes_type)
    types = list(map(type, events))
    bounds, at, kind = [0], 0, bytes_type
    while True:
        try:
            at = types.index(kind, at)
        except ValueError:
            break
        bounds.append(at)
        kind = tuple if kind is bytes_type else bytes_type
    bounds.append(len(events))
    return bounds


def exited(rec, out):
    """(exited, t, pid, status or None)"""
    status = "" if rec[3] is None else ',"status":' + jstr(rec[3])
    out.append('{"ev":"worker_exited","t":%d,"pid":%d%s}' % (rec[1], rec[2], status))


def format_batch(events, out, final, taken):
    """Appends the lines of `events` (taken from the buffer, in order, at monotonic time
    `taken`) to `out`, then those of queued records that waited long enough and of tasks
    running long enough; `final`: all of them (the process is ending)."""
    if _again:
        # Taken as the buffer is: a program thread may add to it meanwhile (unformatted).
        count = len(_again)
        again = sorted(set(_again[:count]))
        del _again[:count]
        for n in again:
            name((name, n), out)
    bounds = runs(events)
    for i in range(len(bounds) - 1):
        part = events[bounds[i]:bounds[i + 1]]
        if i % 2:
            pack(part, out)
        else:
            _format_records(part, out)
    new, old = _pending
    if old:
        out.extend(map(QUEUED.__mod__, old.values()))
        old.clear()
    _pending[0], _pending[1] = old, new
    if final:
        out.extend(map(QUEUED.__mod__, new.values()))
        new.clear()
    _report_running(out, final, taken)


def _format_records(events, out):
    """Appends the lines of `events`, records that are tuples."""
    new, old = _pending
    reported = _reported
    for rec in events:
        kind = rec[0]
        try:
            if kind is RAN:
                task_id = rec[4]
                if reported and task_id in reported:
                    reported.discard(task_id)
                    out.append(_FINISHED % (rec[2], task_id, rec[3]))
                    continue
                q = new.pop(task_id, None) if new else None
                if q is None and old:
                    q = old.pop(task_id, None)
                out.append(RAN % rec if q is None else _RAN_Q % (rec + (q[1],)))
            elif kind is QUEUED:
                if rec[2] not in reported:  # never after its start (see above)
                    new[rec[2]] = rec
            else:
                kind(rec, out)
        except Exception:  # never break the program: count what was lost
            channel.lost(1)


def _report_running(out, final, taken):
    """`task_started` lines for the tasks the workers' slots hold, running long enough (and
    since before the batch was taken)."""
    if not slots:
        return
    edge = min(taken, monotonic_ns() - (0 if final else REPORT_AFTER_NS))
    for slot in slots:
        cur = slot[1]  # read once: the worker may change it meanwhile
        if cur is None:
            continue
        if type(cur) is int:  # a packed task (NAME_BITS): its end is packed, read as an end
            t0 = slot[6]
            if slot[1] is not cur or t0 > edge or slot[4] == cur:
                continue  # ended meanwhile (t0 may be the next one's), too new, or told
            slot[4] = cur
            task_id = "%d-%d" % (channel.st["pid"], cur >> NAME_BITS)
            _started_line(task_id, names[cur & NAME_MASK], slot[0], t0, out)
            continue
        if cur[3] > edge or cur[0] in _reported:
            continue
        if len(_reported) >= MAX_REPORTED:
            _reported.clear()
        _reported.add(cur[0])
        _started_line(cur[0], cur[1], cur[2], cur[3], out)
    if len(slots) > 1024:  # threads come and go: forget the slots of those that ended
        slots[:] = [s for s in slots if s[2].is_alive()]


channel.formatter, channel.after_send = format_batch, after_send
channel.unformatted = unformatted


def after_fork():
    """The child's records are its own: what the parent held is the parent's to write. Its
    names too, but the parent's are kept (below `inherited[0]`): a task the parent queued as
    packed may run in the child (its pool's queue is a copy), and must find its name. The
    child writes no name line for them, so such a task goes as a line (tasks.run_packed)."""
    global _naming
    _naming = threading.Lock()  # another thread of the parent may have held it
    _pending[0], _pending[1] = {}, {}
    _reported.clear()
    del slots[:]
    del _announced[:]
    del _again[:]
    inherited[0] = len(names)
    indexed.clear()
    del _codes[:]
