# joblib.Parallel, with the loky (default), threading and multiprocessing backends. joblib
# sends calls to its workers in batches (BatchedCalls); each call of a batch is its own task,
# reported where the batch runs. The batch itself is no task: the pools that carry it
# (ThreadPool, a loky or multiprocessing worker) are told not to report it.

from functools import partial

from . import hooks, mp, tasks
from .tasks import label_of, name_of, queued, run, shown_args


def _patch_parallel(module):
    batch_cls = module.BatchedCalls
    original = batch_cls.__init__
    if getattr(original, "_poolscope", False):
        return

    def __init__(self, iterator_slice, backend_and_jobs, *args, **kwargs):
        original(self, iterator_slice, backend_and_jobs, *args, **kwargs)
        # In the process that makes the batch: each call becomes a task, queued now. A
        # worker that unpickles the batch builds it again from calls already wrapped.
        backend = backend_and_jobs[0] if isinstance(backend_and_jobs, tuple) else backend_and_jobs
        in_process = bool(getattr(backend, "uses_threads", False))
        self.items = [_task(call, in_process) for call in self.items]

    __init__.__wrapped__, __init__._poolscope = original, True
    batch_cls.__init__ = __init__
    tasks.SELF_REPORTING.add(batch_cls)


def _task(call, in_process):
    func, args, kwargs = call
    if getattr(func, "func", None) is run:
        return call
    text = name_of(func)
    if tasks.WITH_ARGS:
        text = label_of(text, shown_args(args, kwargs))
    return (partial(run, queued(text, in_process), text, func), args, kwargs)


def install():
    hooks.when_imported("joblib.parallel", _patch_parallel)
    hooks.when_imported(
        "joblib.externals.loky.backend.popen_loky_posix", lambda m: mp.watch_exits(m.Popen))
