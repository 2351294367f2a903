# Dask run from the program: its local schedulers (`dask.compute(..., scheduler="threads" or
# "processes")`, also "sync") and a distributed cluster it starts itself (`LocalCluster`,
# whose workers are this program's processes and threads). One task per key, named by the
# key's function as Dask names it (`key_split`: `inc-5f2a…` -> `inc`), on the worker thread or
# process that computed it. Dask's own machinery (the executors that carry a batch of keys,
# the worker's and the client's housekeeping threads) is no task: futures.py leaves it alone.
#
# A cluster poolscope connects to by address (`--dask`) is watched from outside instead
# (src/source/cluster/watch.py); both name tasks with the same `key_split`.

from . import hooks, tasks
from .channel import jstr

MAX_NAMES = 1024
_names = {}


def key_name(key):
    """A key's function name, as JSON (cached by prefix)."""
    try:
        from dask.utils import key_split

        name = key_split(key)
    except Exception:
        name = "task"
    encoded = _names.get(name)
    if encoded is None:
        encoded = jstr(str(name)[:200])
        if len(_names) < MAX_NAMES:
            _names[name] = encoded
    return encoded


def _patch_local(module):
    """dask.local runs every key through `execute_task`, in a pool thread or process; each
    call is one task, timed around the key's own computation."""
    original = module.execute_task
    if getattr(original, "_poolscope", False):
        return

    def execute_task(key, task_info, dumps, loads, get_id, pack_exception):
        try:
            task, data = loads(task_info)
            result = tasks.run(tasks.next_id(), key_name(key), task, data)
            result = dumps((result, get_id()))
            failed = False
        except BaseException as e:
            result = pack_exception(e, dumps)
            failed = True
        return key, result, failed

    execute_task._poolscope = True
    execute_task.__wrapped__ = original
    module.execute_task = execute_task


def _patch_worker(module):
    """A distributed worker runs each key's function in `_run_task` on its executor thread;
    the function is wrapped there, so the task is the function's own call."""
    original = module._run_task
    if getattr(original, "_poolscope", False):
        return

    def _run_task(task, data, execution_state, key, *args, **kwargs):
        task_id, name = tasks.next_id(), key_name(key)

        def call(d):
            return tasks.run(task_id, name, task, d)

        return original(call, data, execution_state, key, *args, **kwargs)

    _run_task._poolscope = True
    _run_task.__wrapped__ = original
    module._run_task = _run_task


def install():
    hooks.when_imported("dask.local", _patch_local)
    hooks.when_imported("distributed.worker", _patch_worker)
