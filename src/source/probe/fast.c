/* poolscope's Python probe, its two hot paths in C: a thread pool's task queued and run
 * (futures.py's work item), which in Python cost a no-op task about 3.4 µs of CPU, most of it
 * the interpreter running the probe's own lines (issue 17). What they do is exactly what
 * tasks.run_packed() and futures.py's queue_packed() do, which stay the reference and are
 * used wherever this module cannot be loaded (another Python, a free-threaded build, a
 * directory that cannot map code): the probe works the same without it.
 *
 * Built by build.rs against CPython's stable ABI (abi3, from 3.8 on), with the few
 * declarations it uses written here: no Python headers are needed to build poolscope. Only
 * functions and data of the stable ABI are used; objects are touched through them, never
 * through their layout, but for an object's type (`ob_type`, as the limited API's Py_TYPE).
 *
 * Nothing here may break the program: an error of the probe's own is cleared and the call
 * goes the Python way (queued), and the task's own exception is passed on unchanged (run). */

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

typedef ssize_t Py_ssize_t;
typedef struct _object {
    Py_ssize_t ob_refcnt;
    struct _object *ob_type;
} PyObject;
typedef PyObject *(*PyCFunction)(PyObject *, PyObject *);
typedef struct {
    const char *ml_name;
    PyCFunction ml_meth;
    int ml_flags;
    const char *ml_doc;
} PyMethodDef;
typedef struct {
    PyObject ob_base;
    PyObject *(*m_init)(void);
    Py_ssize_t m_index;
    PyObject *m_copy;
} PyModuleDef_Base;
typedef struct {
    PyModuleDef_Base m_base;
    const char *m_name;
    const char *m_doc;
    Py_ssize_t m_size;
    PyMethodDef *m_methods;
    void *m_slots, *m_traverse, *m_clear, *m_free;
} PyModuleDef;

#define METH_VARARGS 0x0001
#define METH_O 0x0008
#define Py_EQ 2
#define PYTHON_ABI_VERSION 3

extern PyObject _Py_NoneStruct, _Py_TrueStruct, _Py_FalseStruct;
extern PyObject *PyExc_AttributeError, *PyExc_ValueError;
void Py_IncRef(PyObject *);
void Py_DecRef(PyObject *);
PyObject *PyObject_GetAttr(PyObject *, PyObject *);
PyObject *PyObject_Call(PyObject *, PyObject *, PyObject *);
PyObject *PyObject_CallObject(PyObject *, PyObject *);
PyObject *PyObject_CallFunctionObjArgs(PyObject *, ...);
int PyObject_RichCompareBool(PyObject *, PyObject *, int);
PyObject *PyIter_Next(PyObject *);
PyObject *PyDict_GetItemWithError(PyObject *, PyObject *);
Py_ssize_t PyDict_Size(PyObject *);
PyObject *PyList_GetItem(PyObject *, Py_ssize_t);
int PyList_SetItem(PyObject *, Py_ssize_t, PyObject *);
int PyList_Append(PyObject *, PyObject *);
int PyDict_Contains(PyObject *, PyObject *);
int PyDict_SetItem(PyObject *, PyObject *, PyObject *);
Py_ssize_t PyList_Size(PyObject *);
Py_ssize_t PyTuple_Size(PyObject *);
PyObject *PyLong_FromLongLong(long long);
PyObject *PyLong_FromSsize_t(Py_ssize_t);
PyObject *PyLong_FromVoidPtr(void *);
PyObject *PyList_New(Py_ssize_t);
char *PyBytes_AsString(PyObject *);
Py_ssize_t PyBytes_Size(PyObject *);
PyObject *PyTuple_New(Py_ssize_t);
int PyTuple_SetItem(PyObject *, Py_ssize_t, PyObject *);
long long PyLong_AsLongLong(PyObject *);
PyObject *PyBytes_FromStringAndSize(const char *, Py_ssize_t);
PyObject *PyUnicode_InternFromString(const char *);
int PyArg_UnpackTuple(PyObject *, const char *, Py_ssize_t, Py_ssize_t, ...);
PyObject *PyErr_Occurred(void);
void PyErr_Clear(void);
void PyErr_SetString(PyObject *, const char *);
int PyErr_ExceptionMatches(PyObject *);
void PyErr_Fetch(PyObject **, PyObject **, PyObject **);
void PyErr_NormalizeException(PyObject **, PyObject **, PyObject **);
void PyErr_Restore(PyObject *, PyObject *, PyObject *);
PyObject *PyModule_Create2(PyModuleDef *, int);
extern PyObject PyByteArray_Type;
PyObject *PyByteArray_FromStringAndSize(const char *, Py_ssize_t);
char *PyByteArray_AsString(PyObject *);
Py_ssize_t PyByteArray_Size(PyObject *);
PyObject *PyThreadState_GetDict(void);
int PyDict_DelItem(PyObject *, PyObject *);

#define NONE (&_Py_NoneStruct)
/* As lines.py: a packed task is `number << NAME_BITS | n`, and a record's first eight bytes
 * are `task << 8 | kind`, little endian, so its first byte is its kind. */
#define NAME_BITS 10
#define NAMES (1 << NAME_BITS)
#define KIND_QUEUED 3
#define KIND_RAN 4
#define MAX_NUMBER (1LL << (63 - 8 - NAME_BITS))
#define CPU_TIMED_NS 100000 /* tasks.CPU_TIMED_NS */
#define MAX_TIMED 1024      /* tasks.MAX_TIMED */

/* What init() gave: the probe's own objects (tasks.py says which). */
static PyObject *buf, *indexed, *quals, *names, *timed_by_name, *counter, *function_type, *tls,
    *new_lane, *run_python, *failed, *flush, *inherited;
static Py_ssize_t max_held;
/* How many times init() was called: once, and again in each child of a fork. */
static long long generation;
static PyObject *s_code, *s_qualname, *s_slot, *s_cached_slot;

static long long clock_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void put64(unsigned char *at, uint64_t v) {
    for (int i = 0; i < 8; i++)
        at[i] = (unsigned char)(v >> (8 * i));
}

/* Packed records go into chunks: a bytearray of CHUNK bytes in the buffer, which takes records
 * while it is the buffer's last entry and has room, its unused end zero (no record's kind is
 * 0). An object for every 14 to 31 records, not one each: a bytes object and a list entry
 * per record (two per task) cost a no-op task 0.2 to 0.7 µs more CPU on one core (batches'
 * medians of +1.6 to +2.2 µs against +1.4; issue 17), for only 170 more instructions of
 * 5 300 (callgrind): more memory touched, it seems, not more work. The chunk a thread writes
 * into is the buffer's last entry: the flusher takes it out of the buffer before it reads it
 * (channel.flush), so no record goes into a chunk already read, and nothing here lets the
 * GIL go between the check and the write. */
#define CHUNK 504 /* 14 ended tasks' records; with its NUL, pymalloc's (up to 512 bytes) */
#define CHUNK_MOST (CHUNK / 16) /* records a chunk holds at most (all queued records) */
static PyObject *chunk; /* the chunk records go into, if it is still the buffer's last */
static Py_ssize_t chunk_used;
/* Records held in chunks beyond one per chunk: the buffer holds len(buf) + extra records. */
static Py_ssize_t extra;

/* Puts a record of `size` bytes in the buffer: in its chunk, or a new one. */
static void add(const unsigned char *rec, Py_ssize_t size) {
    Py_ssize_t n = PyList_Size(buf);
    if (chunk != NULL && n > 0 && PyList_GetItem(buf, n - 1) == chunk &&
        chunk_used + size <= CHUNK) {
        memcpy(PyByteArray_AsString(chunk) + chunk_used, rec, (size_t)size);
        chunk_used += size;
        extra++;
        return;
    }
    PyObject *b = PyByteArray_FromStringAndSize(NULL, CHUNK);
    char *at = b == NULL ? NULL : PyByteArray_AsString(b);
    if (at != NULL) {
        memset(at, 0, CHUNK);
        memcpy(at, rec, (size_t)size);
    }
    if (at == NULL || PyList_Append(buf, b) < 0) {
        PyErr_Clear();
        if (b != NULL)
            Py_DecRef(b);
        return;
    }
    if (chunk != NULL)
        Py_DecRef(chunk);
    chunk = b; /* our reference to it, beside the buffer's */
    chunk_used = size;
}

/* Appends a record of `size` bytes to the buffer; an error is the probe's: cleared. Past
 * MAX_HELD records held, a flush (which drops the oldest while the flusher waits for room:
 * channel.flush), as tasks.py does after a record of its own. */
static void append(const unsigned char *rec, Py_ssize_t size) {
    add(rec, size);
    if (PyList_Size(buf) + extra >= max_held) {
        PyObject *r = PyObject_CallObject(flush, NULL);
        if (r == NULL)
            PyErr_Clear();
        else
            Py_DecRef(r);
    }
}

/* The size of the record at `b` by its kind (lines.py), 0 for none (a chunk's unused end). */
static Py_ssize_t record_size(unsigned char kind) {
    return kind == KIND_QUEUED ? 16 : kind == KIND_RAN ? 36 : 0;
}

/* The packed records of a buffer's entry: their bytes (at `*data`, `*size` of them) and how
 * many they are; -1 with an error for an entry of another type. */
static Py_ssize_t records_of(PyObject *entry, const unsigned char **data, Py_ssize_t *size) {
    if (entry->ob_type != &PyByteArray_Type) {
        *data = (const unsigned char *)PyBytes_AsString(entry);
        *size = PyBytes_Size(entry);
        return *data == NULL ? -1 : 1;
    }
    const unsigned char *b = (const unsigned char *)PyByteArray_AsString(entry);
    Py_ssize_t cap = PyByteArray_Size(entry), at = 0, count = 0;
    for (Py_ssize_t one; at < cap && (one = record_size(b[at])) > 0 && at + one <= cap;
         at += one)
        count++;
    *data = b;
    *size = at;
    return count;
}

/* held(buf): the records the buffer holds (a chunk counts as its records). */
static PyObject *held(PyObject *self, PyObject *list) {
    (void)self;
    Py_ssize_t n = PyList_Size(list);
    return n < 0 ? NULL : PyLong_FromSsize_t(n + (extra > 0 ? extra : 0));
}

/* released(entries): entries just taken out of the buffer, their records no longer held; how
 * many records they are. */
static PyObject *released(PyObject *self, PyObject *entries) {
    (void)self;
    Py_ssize_t n = PyList_Size(entries), records = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *entry = PyList_GetItem(entries, i);
        const unsigned char *data;
        Py_ssize_t size, count = 1;
        if (entry->ob_type == &PyByteArray_Type && (count = records_of(entry, &data, &size)) > 1)
            extra -= count - 1;
        records += count;
    }
    return n < 0 ? NULL : PyLong_FromSsize_t(records);
}

/* The function packed_name() last found packed: its code and qualname (held, so that an
 * object at the same address is the same object) and its n. A function with the same two,
 * the common case (a pool's many tasks of one function), skips the index lookup: 380 of the
 * 5 300 instructions the probe adds to a task (callgrind; issue 17). init() forgets it. */
static PyObject *last_code, *last_qual;
static long long last_n = -1;

static void forget_last(void) {
    if (last_code != NULL)
        Py_DecRef(last_code);
    if (last_qual != NULL)
        Py_DecRef(last_qual);
    last_code = last_qual = NULL;
    last_n = -1;
}

/* The n of a code's name if the index has it, for functions of this qualname, else -1. */
static long long indexed_name(PyObject *code, PyObject *qual) {
    PyObject *key = PyLong_FromVoidPtr(code); /* id(code): lines.indexed says why */
    PyObject *nobj = key == NULL ? NULL : PyDict_GetItemWithError(indexed, key); /* borrowed */
    if (key != NULL)
        Py_DecRef(key);
    if (nobj == NULL)
        return -1;
    long long n = PyLong_AsLongLong(nobj);
    PyObject *want = (n >= 0 && n < NAMES) ? PyList_GetItem(quals, (Py_ssize_t)n) : NULL;
    if (want == NULL)
        return -1;
    return PyObject_RichCompareBool(qual, want, Py_EQ) == 1 ? n : -1;
}

/* The n of `fn`'s name if its tasks may be packed (lines.packed_name), else -1. */
static long long packed_name(PyObject *fn) {
    if (fn->ob_type != function_type)
        return -1;
    PyObject *code = PyObject_GetAttr(fn, s_code);
    PyObject *qual = code == NULL ? NULL : PyObject_GetAttr(fn, s_qualname);
    long long n = -1;
    if (qual != NULL && code == last_code && qual == last_qual)
        n = last_n;
    else if (qual != NULL && (n = indexed_name(code, qual)) >= 0) {
        forget_last();
        Py_IncRef(code);
        Py_IncRef(qual);
        last_code = code, last_qual = qual, last_n = n;
    }
    if (code != NULL)
        Py_DecRef(code);
    if (qual != NULL)
        Py_DecRef(qual);
    return n;
}

/* queued(fn): a packed task of `fn`, its record appended, as an int; None when `fn`'s tasks
 * are not packed (futures.py then records it as a line). */
static PyObject *queued(PyObject *self, PyObject *fn) {
    (void)self;
    long long n = packed_name(fn);
    PyObject *next = n < 0 ? NULL : PyIter_Next(counter);
    long long number = next == NULL ? -1 : PyLong_AsLongLong(next);
    if (next != NULL)
        Py_DecRef(next);
    if (number < 1 || number >= MAX_NUMBER) {
        PyErr_Clear();
        Py_IncRef(NONE);
        return NONE;
    }
    long long task = number << NAME_BITS | n;
    unsigned char rec[16];
    put64(rec, (uint64_t)task << 8 | KIND_QUEUED);
    put64(rec + 8, (uint64_t)clock_ns(CLOCK_MONOTONIC));
    append(rec, sizeof rec);
    return PyLong_FromLongLong(task);
}

/* Calls `fn(*args)` for a call the probe makes for itself: its error is cleared. */
static void call_quietly(PyObject *fn, PyObject *a, PyObject *b, PyObject *c, PyObject *d,
                         PyObject *e, PyObject *f) {
    PyObject *r = PyObject_CallFunctionObjArgs(fn, a, b, c, d, e, f, NULL);
    if (r == NULL)
        PyErr_Clear();
    else
        Py_DecRef(r);
}

/* The task's exception: recorded (tasks.failed_native), then raised again as it was. */
static PyObject *task_failed(PyObject *slot, PyObject *task, long long t0, long long c0,
                             int timed) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *t0o = PyLong_FromLongLong(t0), *c0o = PyLong_FromLongLong(c0);
    if (t0o != NULL && c0o != NULL && value != NULL)
        call_quietly(failed, slot, task, t0o, c0o, timed ? &_Py_TrueStruct : &_Py_FalseStruct,
                     value);
    else
        PyErr_Clear();
    if (t0o != NULL)
        Py_DecRef(t0o);
    if (c0o != NULL)
        Py_DecRef(c0o);
    PyErr_Restore(type, value, tb);
    return NULL;
}

/* Whether the next task called `label` has its CPU time read: tasks._ran_for(). */
static void ran_for(PyObject *label, int timed) {
    PyObject *value = timed ? &_Py_TrueStruct : &_Py_FalseStruct;
    int known = PyDict_Contains(timed_by_name, label);
    if ((known == 1 || PyDict_Size(timed_by_name) < MAX_TIMED) &&
        PyDict_SetItem(timed_by_name, label, value) < 0)
        PyErr_Clear();
    if (known < 0)
        PyErr_Clear();
}

/* The calling thread's slot (tasks._new_lane), a new reference; NULL with an error. It is
 * `tls.slot`, kept also in the thread state's own dict: one lookup there, where the
 * thread-local's attribute took 440 instructions a task (callgrind; issue 17). That dict ends
 * with the thread, as the thread-local's does; a fork's child forgets it (init). */
static PyObject *lane_slot(void) {
    PyObject *mine = PyThreadState_GetDict(); /* borrowed; NULL (no error) if none */
    PyObject *slot = mine == NULL ? NULL : PyDict_GetItemWithError(mine, s_cached_slot);
    if (slot != NULL) {
        Py_IncRef(slot);
        return slot;
    }
    PyErr_Clear();
    slot = PyObject_GetAttr(tls, s_slot);
    if (slot == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return NULL;
        PyErr_Clear();
        slot = PyObject_CallObject(new_lane, NULL);
    }
    if (slot != NULL && mine != NULL && PyDict_SetItem(mine, s_cached_slot, slot) < 0)
        PyErr_Clear();
    return slot;
}

/* Whether the slot's thread can run `n`'s task packed (as tasks.run_packed); its tid. */
static long long packs(PyObject *slot, long long n) {
    PyObject *tid = PyList_GetItem(slot, 5), *cur = PyList_GetItem(slot, 1);
    PyObject *first = PyList_GetItem(inherited, 0);
    if (tid == NULL || cur != NONE || first == NULL) {
        PyErr_Clear();
        return 0;
    }
    long long t = PyLong_AsLongLong(tid), from = PyLong_AsLongLong(first);
    if (t <= 0 || n < from) {
        PyErr_Clear();
        return 0;
    }
    return t;
}

/* run(task, fn, args, kwargs): tasks.run_packed(), the same records. */
static PyObject *run(PyObject *self, PyObject *argv) {
    (void)self;
    PyObject *task, *fn, *args, *kwargs;
    if (!PyArg_UnpackTuple(argv, "run", 4, 4, &task, &fn, &args, &kwargs))
        return NULL;
    long long tk = PyLong_AsLongLong(task);
    /* The call's arguments as a tuple and a dict (a sequence and a mapping go Python's way:
     * Python 3.8's submit gives a list). */
    int plain = PyTuple_Size(args) >= 0 && (kwargs == NONE || PyDict_Size(kwargs) >= 0);
    PyObject *slot = tk < 0 || !plain ? NULL : lane_slot();
    long long n = tk & (NAMES - 1), tid = slot == NULL ? 0 : packs(slot, n);
    if (tid == 0) { /* not packed here (a task inside a task, a process lane…): Python's */
        PyErr_Clear();
        if (slot != NULL)
            Py_DecRef(slot);
        return PyObject_CallFunctionObjArgs(run_python, task, fn, args, kwargs, NULL);
    }
    PyObject *label = PyList_GetItem(names, (Py_ssize_t)n); /* borrowed */
    PyObject *was = label == NULL ? NULL : PyDict_GetItemWithError(timed_by_name, label);
    int timed = was == NULL || was == &_Py_TrueStruct;
    PyErr_Clear();
    long long t0 = clock_ns(CLOCK_MONOTONIC);
    long long c0 = timed ? clock_ns(CLOCK_THREAD_CPUTIME_ID) : 0;
    PyObject *start = PyLong_FromLongLong(t0);
    if (start == NULL || PyList_SetItem(slot, 6, start) < 0) /* first: see lines.NAME_BITS */
        PyErr_Clear();
    Py_IncRef(task);
    if (PyList_SetItem(slot, 1, task) < 0)
        PyErr_Clear();
    PyObject *kw = kwargs != NONE && PyDict_Size(kwargs) > 0 ? kwargs : NULL;
    long long forks = generation;
    PyObject *result = PyObject_Call(fn, args, kw);
    if (forks != generation) { /* a child of a fork in the task: the task is its parent's */
        Py_DecRef(slot);
        return result;
    }
    if (result == NULL) {
        task_failed(slot, task, t0, c0, timed);
        Py_DecRef(slot);
        return NULL;
    }
    long long cpu = timed ? clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0 : -1;
    long long t1 = clock_ns(CLOCK_MONOTONIC);
    Py_IncRef(NONE);
    if (PyList_SetItem(slot, 1, NONE) < 0)
        PyErr_Clear();
    if ((t1 - t0 >= CPU_TIMED_NS) != timed && label != NULL) /* tasks._ran_for() */
        ran_for(label, t1 - t0 >= CPU_TIMED_NS);
    unsigned char rec[36];
    put64(rec, (uint64_t)tk << 8 | KIND_RAN);
    put64(rec + 8, (uint64_t)t0);
    put64(rec + 16, (uint64_t)t1);
    put64(rec + 24, (uint64_t)cpu);
    for (int i = 0; i < 4; i++)
        rec[32 + i] = (unsigned char)((uint64_t)tid >> (8 * i));
    append(rec, sizeof rec);
    Py_DecRef(slot);
    return result;
}

static int is_packed(PyObject *entry, PyObject *bytes_type) {
    return entry->ob_type == bytes_type || entry->ob_type == &PyByteArray_Type;
}

/* runs(events, bytes): lines.runs(), where `events`' runs of tuples and of packed records
 * (bytes) begin, alternately, tuples first, and their end. */
static PyObject *runs(PyObject *self, PyObject *argv) {
    (void)self;
    PyObject *events, *bytes_type;
    if (!PyArg_UnpackTuple(argv, "runs", 2, 2, &events, &bytes_type))
        return NULL;
    Py_ssize_t size = PyList_Size(events);
    PyObject *bounds = size < 0 ? NULL : PyList_New(0);
    if (bounds == NULL)
        return NULL;
    int packed = 1; /* so that 0 is the first bound */
    for (Py_ssize_t i = -1; i <= size; i++) {
        if (i >= 0 && i < size && is_packed(PyList_GetItem(events, i), bytes_type) == packed)
            continue;
        PyObject *at = PyLong_FromSsize_t(i < 0 ? 0 : i);
        int failed = at == NULL || PyList_Append(bounds, at) < 0;
        if (at != NULL)
            Py_DecRef(at);
        if (failed) {
            Py_DecRef(bounds);
            return NULL;
        }
        packed = !packed;
    }
    return bounds;
}

/* Each byte's two hex digits (filled when the module is loaded): one load and one store a byte. */
static char hex_pairs[256][2];

/* One `packed` line: `head`, the hex of the records of `records[from:to]` (`size` bytes: pack
 * has read their entries), `"}\n`. */
static PyObject *packed_line(PyObject *records, Py_ssize_t from, Py_ssize_t to, Py_ssize_t size,
                             const char *head, Py_ssize_t head_size) {
    PyObject *line = PyBytes_FromStringAndSize(NULL, head_size + 2 * size + 3);
    char *at = line == NULL ? NULL : PyBytes_AsString(line);
    if (at == NULL)
        return NULL;
    memcpy(at, head, (size_t)head_size);
    at += head_size;
    const unsigned char *data;
    Py_ssize_t one;
    for (Py_ssize_t i = from; i < to; i++) {
        records_of(PyList_GetItem(records, i), &data, &one);
        for (Py_ssize_t j = 0; j < one; j++, at += 2)
            memcpy(at, hex_pairs[data[j]], 2);
    }
    memcpy(at, "\"}\n", 3);
    return line;
}

/* pack(records, head, per_line, out): lines.pack(), `head` its lines' start as bytes; each
 * line has whole entries (a record or a chunk) and at most `per_line` records. */
static PyObject *pack(PyObject *self, PyObject *argv) {
    (void)self;
    PyObject *records, *head, *per, *out;
    if (!PyArg_UnpackTuple(argv, "pack", 4, 4, &records, &head, &per, &out))
        return NULL;
    Py_ssize_t size = PyList_Size(records), per_line = (Py_ssize_t)PyLong_AsLongLong(per);
    const char *h = PyBytes_AsString(head);
    Py_ssize_t head_size = PyBytes_Size(head);
    if (size < 0 || h == NULL || head_size < 0)
        return NULL;
    if (per_line < CHUNK_MOST) {
        PyErr_SetString(PyExc_ValueError, "pack: per_line must hold a chunk");
        return NULL;
    }
    for (Py_ssize_t from = 0, to; from < size; from = to) {
        Py_ssize_t count = 0, total = 0, one, bytes;
        const unsigned char *data;
        for (to = from; to < size; to++) {
            if ((one = records_of(PyList_GetItem(records, to), &data, &bytes)) < 0)
                return NULL;
            if (count + one > per_line)
                break;
            count += one;
            total += bytes;
        }
        PyObject *line = packed_line(records, from, to, total, h, head_size);
        PyObject *n = line == NULL ? NULL : PyLong_FromSsize_t(count);
        PyObject *pair = n == NULL ? NULL : PyTuple_New(2);
        if (pair == NULL) {
            if (line != NULL)
                Py_DecRef(line);
            if (n != NULL)
                Py_DecRef(n);
            return NULL;
        }
        PyTuple_SetItem(pair, 0, line); /* steals */
        PyTuple_SetItem(pair, 1, n);
        int failed = PyList_Append(out, pair) < 0;
        Py_DecRef(pair);
        if (failed)
            return NULL;
    }
    Py_IncRef(NONE);
    return NONE;
}

static void keep(PyObject **into, PyObject *value) {
    Py_IncRef(value);
    if (*into != NULL)
        Py_DecRef(*into);
    *into = value;
}

/* init(buf, indexed, quals, names, timed, counter, function type, tls, new_lane,
 * run_packed, failed_native, flush, inherited, MAX_HELD): the probe's objects these calls use (again
 * after a fork, which makes a new tls). */
static PyObject *init(PyObject *self, PyObject *argv) {
    (void)self;
    PyObject *o[14];
    if (!PyArg_UnpackTuple(argv, "init", 14, 14, &o[0], &o[1], &o[2], &o[3], &o[4], &o[5],
                           &o[6], &o[7], &o[8], &o[9], &o[10], &o[11], &o[12], &o[13]))
        return NULL;
    long long most = PyLong_AsLongLong(o[13]);
    if (most < 1) {
        PyErr_SetString(PyExc_ValueError, "init: MAX_HELD must be positive");
        return NULL;
    }
    PyObject **into[13] = {&buf,      &indexed,  &quals,      &names,  &timed_by_name,
                           &counter,  &function_type, &tls, &new_lane, &run_python,
                           &failed,   &flush,    &inherited};
    for (int i = 0; i < 13; i++)
        keep(into[i], o[i]);
    max_held = (Py_ssize_t)most;
    generation++;
    /* After a fork: the child's buffer starts empty (channel.py), whatever the parent held,
     * or had taken out of it and not yet released (a fork while its flusher wrote). */
    if (chunk != NULL)
        Py_DecRef(chunk);
    chunk = NULL;
    extra = 0;
    /* The names' index is new (lines.after_fork), and so is the thread-local: the slot this
     * thread kept is its parent's. */
    forget_last();
    PyObject *mine = s_cached_slot == NULL ? NULL : PyThreadState_GetDict();
    if (mine != NULL && PyDict_DelItem(mine, s_cached_slot) < 0)
        PyErr_Clear(); /* none kept: a KeyError */
    if (s_code == NULL) {
        s_code = PyUnicode_InternFromString("__code__");
        s_qualname = PyUnicode_InternFromString("__qualname__");
        s_cached_slot = PyUnicode_InternFromString("poolscope_probe.slot");
        s_slot = PyUnicode_InternFromString("slot");
        if (s_code == NULL || s_qualname == NULL || s_slot == NULL || s_cached_slot == NULL)
            return NULL;
    }
    Py_IncRef(NONE);
    return NONE;
}

static PyMethodDef methods[] = {
    {"init", init, METH_VARARGS, "Gives the probe's objects these calls use."},
    {"queued", queued, METH_O, "A packed task of fn, queued; None if not packed."},
    {"run", run, METH_VARARGS, "Runs a packed task: tasks.run_packed()."},
    {"runs", runs, METH_VARARGS, "Where runs of tuples and of packed records begin."},
    {"pack", pack, METH_VARARGS, "Appends the packed lines of packed records."},
    {"held", held, METH_O, "The records the buffer holds."},
    {"released", released, METH_O, "Entries taken out of the buffer: their records."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef module = {
    {{1, NULL}, NULL, 0, NULL}, "_fast", "The probe's hot paths in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

__attribute__((visibility("default"))) PyObject *PyInit__fast(void) {
    for (int i = 0; i < 256; i++) {
        hex_pairs[i][0] = "0123456789abcdef"[i >> 4];
        hex_pairs[i][1] = "0123456789abcdef"[i & 15];
    }
    return PyModule_Create2(&module, PYTHON_ABI_VERSION);
}
