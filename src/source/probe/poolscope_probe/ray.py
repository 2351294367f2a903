# Ray started by the program (`ray.init()` with no address): its worker processes are started
# by the program's raylet with the program's environment, so the probe runs in them too. Each
# remote function or actor method call is one task on the worker process that ran it, named by
# the function. Ray's own functions (its `ray.*` internals) and executors are no task.
#
# A cluster poolscope connects to by address (`--ray`) is watched from outside instead
# (src/source/cluster/watch.py), from the task events Ray keeps.

from . import hooks, tasks


def _wrap(function, name):
    def call(*args, **kwargs):
        return tasks.run(tasks.next_id(), name, function, *args, **kwargs)

    call._poolscope = True
    call.__wrapped__ = function
    return call


def _patch_functions(module):
    cls = module.FunctionActorManager
    original = cls.get_execution_info
    if getattr(original, "_poolscope", False):
        return
    wrapped = {}  # function id -> the info with its function wrapped (one per function)

    def get_execution_info(self, job_id, function_descriptor):
        info = original(self, job_id, function_descriptor)
        fn = info.function
        if getattr(fn, "_poolscope", False) or tasks.internal(fn):
            return info
        key = id(fn)
        got = wrapped.get(key)
        if got is None or got[0] is not fn:
            name = tasks.name_of(fn)
            got = (fn, info._replace(function=_wrap(fn, name)))
            wrapped[key] = got
        return got[1]

    get_execution_info._poolscope = True
    get_execution_info.__wrapped__ = original
    cls.get_execution_info = get_execution_info


def install():
    hooks.when_imported("ray._private.function_manager", _patch_functions)
