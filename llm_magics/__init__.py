"""llm_magics: large language models as a first-class Jupyter tool.

    import llm_magics as lm
    r = lm.client("openai:gpt-4o-mini").chat("Hi")     # or lm.client() for the default model
    %load_ext llm_magics                                 # then %%llm cells

Importing this package is cheap: httpx2, pandas, numpy, PIL and IPython load only when a
feature needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._errors import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContextLengthError,
    LLMError,
    ModelNotFoundError,
    OutputParseError,
    ProviderError,
    RateLimitError,
    StreamInterruptedError,
    TimeoutError,
    UnknownModelError,
)

if TYPE_CHECKING:
    from ._client import Client
    from ._types import Message, Response, ToolCall, Transcript, Usage
    from .cache import cache_stats, clear_cache
    from .media import Audio, Image
    from .pricing import model_profile, register_model_profile, set_price
    from .serve import serve_local
    from .tools import tool
    from .usage import count_tokens, reset_usage, usage

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "Audio",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConfigError",
    "ContextLengthError",
    "Image",
    "LLMError",
    "Message",
    "ModelNotFoundError",
    "OutputParseError",
    "ProviderError",
    "RateLimitError",
    "Response",
    "StreamInterruptedError",
    "TimeoutError",
    "ToolCall",
    "Transcript",
    "UnknownModelError",
    "Usage",
    "__version__",
    "alias",
    "cache_stats",
    "clear_cache",
    "client",
    "count_tokens",
    "load_ipython_extension",
    "model_profile",
    "register",
    "register_model_profile",
    "reset_usage",
    "serve_local",
    "set_price",
    "tool",
    "unload_ipython_extension",
    "usage",
    "use",
]

# name -> module that defines it; imported on first attribute access.
_LAZY = {
    "Audio": ".media",
    "Client": "._client",
    "Image": ".media",
    "Message": "._types",
    "Response": "._types",
    "ToolCall": "._types",
    "Transcript": "._types",
    "Usage": "._types",
    "cache_stats": ".cache",
    "clear_cache": ".cache",
    "count_tokens": ".usage",
    "model_profile": ".pricing",
    "register_model_profile": ".pricing",
    "reset_usage": ".usage",
    "serve_local": ".serve",
    "set_price": ".pricing",
    "tool": ".tools",
    "usage": ".usage",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llm_magics' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def client(model: str | None = None, **options: Any) -> Client:
    """A client for ``"provider:model"``, an alias, or None for this kernel's default model.

    Options: ``api_key=``, ``base_url=``, ``timeout=`` (seconds for a whole request),
    ``cache=False``, and defaults for every call such as ``temperature=`` or ``system=``.
    """
    from .registry import default_registry

    return default_registry.client(model, **options)


def register(name: str, base_url: str, *, api_key_env: str | None = None, **options: Any) -> None:
    """Make an OpenAI-compatible server available as ``name:MODEL``."""
    from .registry import default_registry

    default_registry.register(name, base_url, api_key_env=api_key_env, **options)


def alias(name: str, model: str) -> None:
    """``lm.alias("fast", "groq:llama-3.3-70b-versatile")``, then ``lm.client("fast")``."""
    from .registry import default_registry

    default_registry.alias(name, model)


def use(model: str | None) -> None:
    """Set this kernel's default model."""
    from .registry import default_registry

    default_registry.use(model)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext llm_magics``: register the %%llm and %llm magics."""
    from .magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import unload_ipython_extension as _unload

    _unload(ipython)


# DataFrame.llm / Series.llm: registered now if pandas is imported, else when it is.
from ._pandas_hook import install as _install_pandas_hook  # noqa: E402

_install_pandas_hook()
