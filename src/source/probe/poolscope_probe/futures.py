# concurrent.futures: ThreadPoolExecutor and ProcessPoolExecutor (so also asyncio's
# run_in_executor and to_thread). One task per submitted call; `ProcessPoolExecutor.map`
# submits chunks of calls, and each call of a chunk is its own task (back to back on the
# worker that took the chunk).

from . import hooks, tasks
from functools import partial

from .lines import QUEUED, queued_now
from .tasks import StarItem, function_type, label_of, name_of, queued, run, shown_args, tag
from .tasks import _counter as counter, _idp as idp, append, monotonic_ns

with_args = tasks.WITH_ARGS
# Plain functions of the program already submitted, with their names as JSON: a second submit
# of one skips the checks (a framework's function is never put here).
plain = {}
MAX_PLAIN = 1024
# A child starts afresh (its flusher is not started yet: the first submit starts it).
__import__("os").register_at_fork(after_in_child=plain.clear)


def _wrap(cls, in_process):
    original = cls.submit
    if getattr(original, "_poolscope", False):
        return
    kind = QUEUED if in_process else queued_now

    def submit(self, fn, /, *args, **kwargs):
        text = plain.get(fn) if type(fn) is function_type else None
        if text is not None:  # the common case: a function seen before (queued(), inline)
            task_id = idp[0] + str(next(counter))
            append((kind, monotonic_ns(), task_id, text))
            return original(self, partial(run, task_id, text, fn), *args, **kwargs)
        if tasks.internal(fn, args):  # Dask's or Ray's own work; dask.py and ray.py tell theirs
            return original(self, fn, *args, **kwargs)
        if type(fn) is not function_type and not in_process:
            inner = getattr(fn, "func", None)
            if getattr(inner, "__name__", "") == "_process_chunk":
                return _submit_chunk(original, self, fn, inner, args, kwargs)
        text = name_of(fn)
        if type(fn) is function_type and len(plain) < MAX_PLAIN and not with_args:
            plain[fn] = text
        if with_args:
            text = label_of(text, shown_args(_user_args(fn, args), kwargs))
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


def _patch_thread(module):
    _wrap(module.ThreadPoolExecutor, True)


def _patch_process(module):
    _wrap(module.ProcessPoolExecutor, False)


def install():
    hooks.when_imported("concurrent.futures.thread", _patch_thread)
    hooks.when_imported("concurrent.futures.process", _patch_process)
