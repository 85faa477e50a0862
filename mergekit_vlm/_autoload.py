"""Start-up hook: run mergekit-vlm's registration when (and only when) mergekit is imported.

A one-line ``mergekit_vlm.pth`` in site-packages imports this module at interpreter start-up.
It imports nothing heavy; it puts a finder on ``sys.meta_path`` that follows the execution of
mergekit's modules and, once a watched one has executed and mergekit's import has settled
(no mergekit module half-initialised), calls the matching ``install_*`` function of
:mod:`mergekit_vlm.plugin`. Processes that never import mergekit pay for a prefix check per
import. ``MERGEKIT_VLM_DISABLE=1`` switches it off.
"""

import os
import sys

ENV_DISABLE = "MERGEKIT_VLM_DISABLE"

# mergekit module -> plugin function to call once it has been executed.
WATCHED = {
    "mergekit.architecture.json_definitions": "install_architectures",
    "mergekit.merge_methods.registry": "install_method",
    "mergekit.plan": "install_planner",
    "mergekit.merge": "install_merge",
}


# mergekit modules import each other; hooks wait until the outermost mergekit import has
# executed, so the plugin never sees (or imports) a half-initialised mergekit module.
_nesting = 0
_pending = []
# Importing the plugin imports watched modules itself; so may a user importing one of our
# modules first. Those hooks stay queued until no module of ours is half-initialised.
_flushing = False


def _ours_initialising() -> bool:
    """True while one of our modules is mid-import (it imported mergekit itself)."""
    return any(
        getattr(getattr(module, "__spec__", None), "_initializing", False)
        for name, module in list(sys.modules.items())
        if name == "mergekit_vlm" or name.startswith("mergekit_vlm.")
    )


def run_pending() -> None:
    """Install what watched imports queued; our modules that import mergekit call it last."""
    global _flushing
    if _flushing or _nesting or _ours_initialising():
        return
    _flushing = True
    try:
        from mergekit_vlm import plugin

        while _pending:
            hook_name, module = _pending.pop(0)
            getattr(plugin, hook_name)(module)
    finally:
        _flushing = False


class _TrackedLoader:  # a loader (duck-typed: importlib.abc costs ~20 ms to import)
    def __init__(self, loader, hook_name):
        self.loader = loader
        self.hook_name = hook_name

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        global _nesting
        _nesting += 1
        try:
            self.loader.exec_module(module)
            if self.hook_name:
                _pending.append((self.hook_name, module))
        finally:
            _nesting -= 1
        if _nesting == 0:
            run_pending()

    def __getattr__(self, name):  # get_source, get_code, ... for debuggers and inspect
        return getattr(self.loader, name)


class PostImportFinder:  # a meta-path finder (duck-typed, see above)
    def find_spec(self, fullname, path, target=None):
        if fullname != "mergekit" and not fullname.startswith("mergekit."):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _TrackedLoader(spec.loader, WATCHED.get(fullname))
                return spec
        return None


def install() -> None:
    """Watch mergekit imports (idempotent); modules already imported get patched now."""
    if os.environ.get(ENV_DISABLE, "").strip().lower() in ("1", "true", "yes", "on"):
        return
    if not any(isinstance(f, PostImportFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, PostImportFinder())
    loaded = [name for name in WATCHED if name in sys.modules]
    if loaded:
        from mergekit_vlm import plugin

        for name in loaded:
            getattr(plugin, WATCHED[name])(sys.modules[name])


install()
