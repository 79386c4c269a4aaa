"""Register ``DataFrame.llm`` and ``Series.llm`` without importing pandas.

``import llm_magics`` must stay light, yet ``df.llm`` should just work. :func:`install` (called
at the end of ``llm_magics/__init__.py``) does one of two things:

* pandas is already imported: register the accessors now;
* otherwise: put a small finder at the front of ``sys.meta_path``. When ``import pandas``
  starts, it asks the other finders for pandas' real spec, wraps the loader, and registers the
  accessors the moment pandas' ``__init__`` has finished executing. Then it removes itself.

Robustness rules: the hook never changes what pandas imports or how (the wrapper hands the
module its own loader back before executing it), a failure to register is logged and never
breaks ``import pandas``, a pandas import that fails leaves the hook in place for the next
attempt, and registering twice is a no-op.

The registered accessors are thin: they import :mod:`llm_magics.dataframe.accessor` (and with it the
client stack) on first use of ``df.llm``, so ``import pandas`` pays almost nothing.

Thread safety: :func:`install` and the registration may run from any thread; a lock makes the
registration happen once.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from types import ModuleType
from typing import Any

__all__ = ["install", "is_registered"]

log = logging.getLogger("llm_magics")

_lock = threading.RLock()
_registered = False
_local = threading.local()


class _DataFrameAccessor:
    """LLM column mapping: ``df.llm.map``, ``filter``, ``classify``, ``extract``, ``estimate``.

    See :class:`llm_magics.dataframe.accessor.DataFrameLLM`.
    """

    def __new__(cls, obj: Any) -> Any:
        from .accessor import DataFrameLLM

        return DataFrameLLM(obj)


class _SeriesAccessor:
    """LLM mapping of one column: ``s.llm.map``, ``filter``, ``classify``, ``extract``,
    ``estimate``. See :class:`llm_magics.dataframe.accessor.SeriesLLM`."""

    def __new__(cls, obj: Any) -> Any:
        from .accessor import SeriesLLM

        return SeriesLLM(obj)


def is_registered() -> bool:
    return _registered


def _register(pandas: ModuleType) -> None:
    """Attach the accessors to ``pandas``; idempotent, never raises."""
    global _registered
    with _lock:
        if _registered:
            return
        try:
            extensions = pandas.api.extensions
            if getattr(pandas.DataFrame, "llm", None) is not _DataFrameAccessor:
                extensions.register_dataframe_accessor("llm")(_DataFrameAccessor)
            if getattr(pandas.Series, "llm", None) is not _SeriesAccessor:
                extensions.register_series_accessor("llm")(_SeriesAccessor)
            _registered = True
        except Exception:
            log.warning(
                "llm_magics could not register the DataFrame.llm / Series.llm accessors; "
                "call llm_magics.dataframe.accessor.register() to retry",
                exc_info=True,
            )
        finally:
            _uninstall_finder()


class _RegisteringLoader:
    """Wraps pandas' own loader: execute pandas, then register. Everything else delegates."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # pandas runs with its real loader in __loader__ / __spec__.loader, as without the hook.
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = self._loader
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = self._loader
        self._loader.exec_module(module)
        try:
            _register(module)
        except Exception:  # _register logs its own failures; this is the last line of defence
            log.warning("llm_magics: registering the pandas accessors failed", exc_info=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _PandasFinder:
    """A ``sys.meta_path`` finder that only ever answers for the top-level ``pandas``."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "pandas" or getattr(_local, "busy", False):
            return None
        _local.busy = True  # the other finders may import; never recurse into ourselves
        try:
            spec = None
            for finder in list(sys.meta_path):
                if finder is self or isinstance(finder, _PandasFinder):
                    continue
                find = getattr(finder, "find_spec", None)
                if find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
        except Exception:
            return None  # let the import system search as if we were not here
        finally:
            _local.busy = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        spec.loader = _RegisteringLoader(spec.loader)
        return spec

    def invalidate_caches(self) -> None:
        pass


_finder = _PandasFinder()


def _uninstall_finder() -> None:
    with _lock:
        while _finder in sys.meta_path:
            sys.meta_path.remove(_finder)


def install() -> None:
    """Register now if pandas is imported, else when it is. Safe to call repeatedly."""
    with _lock:
        if _registered:
            return
        pandas = sys.modules.get("pandas")
    if pandas is not None and not hasattr(pandas, "api"):
        # Another thread is importing pandas right now: wait for it (outside our lock), as
        # its loader was chosen before the finder could be in place. In the same thread
        # (pandas importing us) this returns the partial module at once.
        try:
            pandas = importlib.import_module("pandas")
        except Exception:
            pandas = None
    with _lock:
        if pandas is not None and hasattr(pandas, "api"):
            _register(pandas)
        elif _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)
