# Runs a pool kind's patch when the module it patches is imported, not before: the probe
# must not import a program's libraries (joblib, multiprocessing…) the program may never
# use, nor import them ahead of the program's own modules.

import sys

_waiting = {}  # module name -> functions to call with the module once it has run


def when_imported(name, patch):
    """Calls `patch(module)` once module `name` is imported (now, if it already is)."""
    module = sys.modules.get(name)
    if module is not None:
        _safely(patch, module)
        return
    _waiting.setdefault(name, []).append(patch)
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def _safely(patch, module):
    try:
        patch(module)
    except Exception as e:  # a library version the probe does not know: watch the rest
        sys.stderr.write("poolscope probe: cannot watch %s: %s: %s\n"
                         % (module.__name__, type(e).__name__, e))


class _Finder(object):
    """A meta-path finder that finds nothing itself: for a module a patch waits for, it asks
    the other finders and has the loader call the patches after the module has run."""

    def find_spec(self, name, path=None, target=None):
        patches = _waiting.get(name)
        if not patches:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        run = getattr(loader, "exec_module", None)
        if run is None:
            return spec
        del _waiting[name]

        def exec_module(module):
            run(module)
            for patch in patches:
                _safely(patch, module)

        try:
            loader.exec_module = exec_module  # this module's own loader object
        except (AttributeError, TypeError):
            return spec
        return spec


_FINDER = _Finder()
