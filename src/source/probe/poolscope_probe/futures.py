# concurrent.futures: ThreadPoolExecutor and ProcessPoolExecutor (so also asyncio's
# run_in_executor and to_thread). One task per submitted call; `ProcessPoolExecutor.map`
# submits chunks of calls, and each call of a chunk is its own task (back to back on the
# worker that took the chunk).
#
# A thread pool's call is recorded by its work item, whose two methods are replaced by ones
# doing the same and reporting the task: no wrapper around submit or around the call. That
# is the cheapest way for the many tiny tasks a thread pool runs: a wrapper around submit
# (a Python frame that repacks the arguments, and a partial) cost a 50 000-task program
# 0.13-0.19 s of 1.4-1.6 s (issue 17). A Python whose work item is not the one these replacements were
# written for (checked by the names its methods use) is watched through submit instead.

from . import hooks, tasks
from functools import partial

from . import lines
from .lines import QUEUED, may_name, names, packed_name, queued_now
from .tasks import StarItem, function_type, label_of, name_of, queued, run, run_call
from .tasks import queue_task, run_task, shown_args, tag
from .tasks import _counter as counter, _idp as idp, append, monotonic_ns

with_args = tasks.WITH_ARGS


def _wrap(cls, in_process):
    original = cls.submit
    if getattr(original, "_poolscope", False):
        return
    kind = QUEUED if in_process else queued_now

    def submit(self, fn, /, *args, **kwargs):
        n = packed_name(fn) if type(fn) is function_type else None
        if n is not None:  # the common case: a function seen before (queued(), inline)
            text = names[n]
            task_id = idp[0] + str(next(counter))
            append((kind, monotonic_ns(), task_id, text))
            return original(self, partial(run, task_id, text, fn), *args, **kwargs)
        if tasks.internal(fn, args):  # Dask's or Ray's own work; dask.py and ray.py tell theirs
            return original(self, fn, *args, **kwargs)
        if type(fn) is not function_type and not in_process:
            inner = getattr(fn, "func", None)
            if getattr(inner, "__name__", "") == "_process_chunk":
                return _submit_chunk(original, self, fn, inner, args, kwargs)
        text = _label(fn, args, kwargs)
        return original(self, partial(run, queued(text, in_process), text, fn), *args, **kwargs)

    submit.__wrapped__ = original
    submit.__doc__ = original.__doc__
    submit._poolscope = True
    cls.submit = submit


def _user_args(fn, args):
    """The arguments the user passed: a partial's own first (asyncio.to_thread's partial
    also holds the context's `run`)."""
    if hasattr(fn, "func") and hasattr(fn, "args"):
        own = fn.args
        if type(getattr(fn.func, "__self__", None)).__name__ == "Context":
            own = own[1:]
        return tuple(own) + args
    return args


def _submit_chunk(original, self, fn, chunk_fn, args, kwargs):
    """`partial(_process_chunk, fn)(chunk)`: the chunk's calls become one task each."""
    user_fn = fn.keywords.get("fn") if fn.keywords else None
    if user_fn is None and fn.args:
        user_fn = fn.args[0]
    chunk = kwargs.pop("chunk", None) if not args else args[0]
    if user_fn is None or chunk is None:
        return original(self, fn, *args, **kwargs)
    name = name_of(user_fn)
    tagged = tuple(tag(chunk, name, True, False))
    return original(self, chunk_fn, StarItem(user_fn, name, True), tagged)


# What the stdlib's `_WorkItem` stores and uses (CPython 3.8 to 3.13), which the replacement
# methods below do the same with.
_ITEM_INIT = ("future", "fn", "args", "kwargs")
_ITEM_RUN = frozenset(("future", "set_running_or_notify_cancel", "fn", "args", "kwargs",
                       "set_result", "BaseException", "set_exception"))


def _label(fn, args, kwargs):
    """The label of a submitted call that is the program's task (see tasks.internal()); a
    plain function's name is announced (lines.name), for its next tasks to use."""
    text = name_of(fn)
    if with_args:
        return label_of(text, shown_args(_user_args(fn, args), kwargs))
    if type(fn) is function_type and may_name(fn):
        lines.name_now(fn, text)
    return text


def _patch_work_item(item):
    """Replaces `item`'s methods (the thread pool's work item) with ones that report its call
    as a task; False when `item` is not the work item they were written for."""
    init, original_run = item.__init__, item.run
    if getattr(original_run, "_poolscope", False):
        return True
    if (getattr(init, "__code__", None) is None or init.__code__.co_argcount != 5
            or init.__code__.co_names != _ITEM_INIT
            or getattr(original_run, "__code__", None) is None
            or original_run.__code__.co_argcount != 1
            or frozenset(original_run.__code__.co_names) != _ITEM_RUN):
        return False

    def __init__(self, future, fn, args, kwargs):
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        # The queued record is also the task's id and label when it runs: a packed task
        # (an int, see lines.NAME_BITS) once its function's name is numbered: the hot path.
        task = queue_task(fn)
        if task is not None:
            self.poolscope = task
            return
        if tasks.internal(fn, args):  # Dask's or Ray's own work: not the program's task
            self.poolscope = None
            return
        text = _label(fn, args, kwargs)
        if not tasks.st["flusher"]:
            tasks.channel.start_flusher()
        self.poolscope = record = (QUEUED, monotonic_ns(), idp[0] + str(next(counter)), text)
        append(record)

    def run_item(self):
        record = self.poolscope
        if record is None:
            return original_run(self)
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            if type(record) is int:
                result = run_task(record, self.fn, self.args, self.kwargs)
            else:
                task_id = record[2]
                if not task_id.startswith(idp[0]):  # queued by a parent before a fork
                    task_id = idp[0] + str(next(counter))  # here it is this process's task
                result = run_call(task_id, record[3], self.fn, self.args, self.kwargs)
        except BaseException as exc:
            self.future.set_exception(exc)
            self = None  # as the stdlib: no reference cycle with the exception
        else:
            self.future.set_result(result)

    for new, old in ((__init__, init), (run_item, original_run)):
        new.__wrapped__, new.__doc__, new._poolscope = old, old.__doc__, True
        new.__name__, new.__qualname__ = old.__name__, old.__qualname__
    item.__init__, item.run = __init__, run_item
    # A work item made before this patch (by a .pth file's code, say) runs as the stdlib's.
    item.poolscope = None
    return True


def _patch_thread(module):
    if not _patch_work_item(module._WorkItem):
        _wrap(module.ThreadPoolExecutor, True)


def _patch_process(module):
    _wrap(module.ProcessPoolExecutor, False)


def install():
    hooks.when_imported("concurrent.futures.thread", _patch_thread)
    hooks.when_imported("concurrent.futures.process", _patch_process)
