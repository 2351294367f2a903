# multiprocessing: Pool and ThreadPool (map, imap, imap_unordered, starmap, apply,
# apply_async, map_async, starmap_async), under fork, spawn and forkserver. One task per
# item, also when the pool sends items in chunks; and the exits of the program's worker
# processes, as the pools reap them, so poolscope can end the tasks a dead worker held.

from functools import partial

from . import hooks, tasks
from .tasks import Item, StarItem, label_of, name_of, queued, run, shown_args, tag


def _patch_pool(module):
    pool_cls = module.Pool
    if getattr(pool_cls.apply_async, "_poolscope", False):
        return
    thread_pool = module.ThreadPool
    mapstar, starmapstar = module.mapstar, module.starmapstar

    def in_process(pool):
        return isinstance(pool, thread_pool)

    def apply_async(self, func, args=(), kwds={}, callback=None, error_callback=None):
        if not tasks.self_reporting(func):
            text = name_of(func)
            if tasks.WITH_ARGS:
                text = label_of(text, shown_args(args, kwds))
            func = partial(run, queued(text, in_process(self)), text, func)
        return original["apply_async"](self, func, args, kwds, callback, error_callback)

    def _map_async(self, func, iterable, mapper, chunksize=None, callback=None,
                   error_callback=None):
        if mapper is mapstar or mapper is starmapstar:
            star = mapper is starmapstar
            name = name_of(func)
            iterable = list(tag(iterable, name, star, in_process(self)))
            func = (StarItem if star else Item)(func, name, star)
        return original["_map_async"](self, func, iterable, mapper, chunksize, callback,
                                      error_callback)

    def imap_like(which):
        def imap(self, func, iterable, chunksize=1):
            name = name_of(func)
            iterable = tag(iterable, name, False, in_process(self))
            return original[which](self, Item(func, name, False), iterable, chunksize)
        return imap

    def terminate(self):
        # The pool ends its workers with SIGTERM (also when a `with` block ends): that is
        # their normal end, not a death.
        for worker in list(getattr(self, "_pool", ()) or ()):
            pid = getattr(worker, "pid", None)
            if pid:
                tasks.STOPPED_BY_POOL.add(pid)
        return original["terminate"](self)

    replacements = {"apply_async": apply_async, "_map_async": _map_async,
                    "imap": imap_like("imap"), "imap_unordered": imap_like("imap_unordered"),
                    "terminate": terminate}
    original = {}
    for attr, fn in replacements.items():
        original[attr] = old = getattr(pool_cls, attr)
        fn.__wrapped__, fn.__doc__, fn._poolscope = old, old.__doc__, True
        fn.__name__ = fn.__qualname__ = old.__name__
        setattr(pool_cls, attr, fn)


def watch_exits(popen_cls):
    """Reports a child process's end when its `poll` first sees it (Pool, ProcessPoolExecutor
    and loky all reap their workers through it)."""
    original = popen_cls.__dict__.get("poll")
    if original is None or getattr(original, "_poolscope", False):
        return

    def poll(self, *args, **kwargs):
        was = self.returncode
        code = original(self, *args, **kwargs)
        if was is None and code is not None:
            tasks.worker_exited(self.pid, code)
        return code

    poll.__wrapped__, poll._poolscope = original, True
    popen_cls.poll = poll


def install():
    hooks.when_imported("multiprocessing.pool", _patch_pool)
    for popen in ("popen_fork", "popen_forkserver"):
        hooks.when_imported("multiprocessing." + popen, lambda m: watch_exits(m.Popen))
