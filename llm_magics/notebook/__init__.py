"""The notebook front end: the ``%%llm``/``%llm`` magics, cell runs, line commands, answer
display and widgets. The only part of the package that imports IPython or ipywidgets.

``%load_ext llm_magics`` calls :func:`load_ipython_extension`; nothing here loads until then.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .magics import LLMMagics, load_ipython_extension, unload_ipython_extension

__all__ = ["LLMMagics", "load_ipython_extension", "unload_ipython_extension"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'llm_magics.notebook' has no attribute {name!r}")
    value = getattr(importlib.import_module(".magics", __name__), name)
    globals()[name] = value
    return value
