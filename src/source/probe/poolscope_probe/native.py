# fast.c, the probe's hot paths in C (a thread pool's task queued and run, and the flusher's
# packed lines), where this Python can load it: CPython from 3.8, through its stable ABI.
# Without it (POOLSCOPE_NATIVE=0, another Python, a free-threaded build, a directory that
# cannot map code) the probe does the same in Python, with the same records, at more cost
# per task: tasks.queue_packed, tasks.run_packed, lines.runs and lines.pack are the reference.

import os


def _load():
    if os.environ.get("POOLSCOPE_NATIVE") == "0":
        return None
    try:
        from . import _fast
    except Exception:  # ImportError, or an OSError of a file that cannot be mapped
        return None
    return _fast


fast = _load()
