# poolscope's Python probe, the loader. poolscope writes this file and the package
# `poolscope_probe/` beside it into a private directory that it puts first on PYTHONPATH, so
# Python runs this as `sitecustomize` at start-up in every process of the watched program.
#
# It does nothing unless POOLSCOPE_EVENTS is set; then it installs the probe (the pool kinds
# it watches are listed in POOL_KINDS in poolscope_probe/__init__.py: add a pool kind there),
# and in every case it runs the sitecustomize the user already had.
# It imports nothing a program might shadow (no json, no fcntl): see poolscope_probe/channel.py.

import os
import sys


def _load_user_sitecustomize():
    """Runs the sitecustomize that this one shadows, if there is one."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        import importlib.machinery
        import importlib.util

        path = [p for p in sys.path if os.path.abspath(p or ".") != here]
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        sys.modules["sitecustomize"] = module
        spec.loader.exec_module(module)
    except Exception as e:  # the user's own sitecustomize failed: say so, as site.py would
        sys.stderr.write("Error in sitecustomize; set PYTHONVERBOSE for traceback:\n")
        sys.stderr.write("%s: %s\n" % (type(e).__name__, e))


if os.environ.get("POOLSCOPE_EVENTS"):
    try:
        import poolscope_probe

        poolscope_probe.install(os.environ["POOLSCOPE_EVENTS"])
    except Exception as _e:  # never break the program being watched
        sys.stderr.write("poolscope probe disabled: %s: %s\n" % (type(_e).__name__, _e))
_load_user_sitecustomize()
