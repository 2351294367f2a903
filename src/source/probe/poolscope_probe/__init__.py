# poolscope's Python probe: reports the tasks of the program's worker pools to poolscope in
# the event protocol (docs/protocol.md), on the FIFO named by POOLSCOPE_EVENTS. Loaded by
# sitecustomize.py, only when poolscope watches the program.
#
# Layout: channel.py writes lines; lines.py turns the buffered records into lines; tasks.py
# runs one task and records it (shared by every pool kind); hooks.py patches a library when the program imports it; one module per pool
# kind below, each with an `install()` that asks hooks.when_imported for what it patches.
#
# To watch a new pool kind: write poolscope_probe/<kind>.py with `install()`, add its name to
# POOL_KINDS, a program under tests/fixtures/python/ and a test in
# tests/integration/probe_pools.rs, and the file to PYTHON_PROBE_FILES in src/source/mod.rs.

POOL_KINDS = (
    "futures",  # concurrent.futures: ThreadPoolExecutor, ProcessPoolExecutor (and asyncio's)
    "mp",  # multiprocessing.Pool, multiprocessing.pool.ThreadPool; worker process exits
    "joblib",  # joblib.Parallel: loky, threading and multiprocessing backends
    "dask",  # dask.compute's local schedulers; a LocalCluster's workers
    "ray",  # the workers of a Ray the program starts (ray.init())
)


def install(path):
    import importlib
    import sys

    from . import channel

    channel.install(path)
    for kind in POOL_KINDS:
        try:
            importlib.import_module(__name__ + "." + kind).install()
        except Exception as e:  # never break the program: watch the other kinds
            sys.stderr.write("poolscope probe: %s not watched: %s: %s\n"
                             % (kind, type(e).__name__, e))
