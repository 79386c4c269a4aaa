"""llm_magics: large language models as a first-class Jupyter tool.

    import llm_magics as lm
    r = lm.client("openai:gpt-4o-mini").chat("Hi")     # or lm.client() for the default model
    %load_ext llm_magics                                 # then %%llm cells

Importing this package is cheap: httpx2, pandas, numpy, PIL and IPython load only when a
feature needs them.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import TYPE_CHECKING, Any

from ._core.errors import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
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
    from ._chat.agent import Agent
    from ._chat.memory import Conversation
    from ._chat.sessions import session, sessions
    from ._chat.store import session_store
    from ._chat.templates.library import templates
    from ._chat.templates.template import Template
    from ._client.budget import budget
    from ._client.client import Client
    from ._client.pricing import model_profile, register_model_profile, set_price
    from ._client.registry import cache_stats, clear_cache
    from ._client.tool_registry import ToolRegistry
    from ._client.tool_schema import Tool
    from ._client.tools import tool
    from ._client.usage import count_tokens, reset_usage, usage
    from ._core.events import StreamEvent, collect, sse
    from ._core.types import Message, Response, ToolCall, Transcript, Usage
    from ._local.serve import serve_local
    from ._media.objects import Audio, Image
    from .dataframe.ray_dataset import ray

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "Agent",
    "Audio",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "Client",
    "ConfigError",
    "ContextLengthError",
    "Conversation",
    "Image",
    "LLMError",
    "Message",
    "ModelNotFoundError",
    "OutputParseError",
    "ProviderError",
    "RateLimitError",
    "Response",
    "StreamEvent",
    "StreamInterruptedError",
    "Template",
    "TimeoutError",
    "Tool",
    "ToolCall",
    "ToolRegistry",
    "Transcript",
    "UnknownModelError",
    "Usage",
    "__version__",
    "alias",
    "budget",
    "cache_stats",
    "chat_widget",
    "clear_cache",
    "client",
    "collect",
    "count_tokens",
    "load_ipython_extension",
    "model_profile",
    "ray",
    "register",
    "register_model_profile",
    "reset_usage",
    "serve_local",
    "session",
    "session_store",
    "sessions",
    "set_price",
    "sse",
    "templates",
    "tool",
    "unload_ipython_extension",
    "usage",
    "use",
]

# name -> module that defines it; imported on first attribute access.
_LAZY = {
    "Agent": "._chat.agent",
    "StreamEvent": "._core.events",
    "Tool": "._client.tool_schema",
    "ToolRegistry": "._client.tool_registry",
    "collect": "._core.events",
    "sse": "._core.events",
    "Audio": "._media.objects",
    "Client": "._client.client",
    "Conversation": "._chat.memory",
    "Image": "._media.objects",
    "Message": "._core.types",
    "Response": "._core.types",
    "Template": "._chat.templates.template",
    "ToolCall": "._core.types",
    "Transcript": "._core.types",
    "Usage": "._core.types",
    "budget": "._client.budget",
    "cache_stats": "._client.registry",
    "chat_widget": ".notebook.chat_widget",
    "clear_cache": "._client.registry",
    "count_tokens": "._client.usage",
    "model_profile": "._client.pricing",
    "ray": ".dataframe.ray_dataset",
    "register_model_profile": "._client.pricing",
    "reset_usage": "._client.usage",
    "serve_local": "._local.serve",
    "session": "._chat.sessions",
    "session_store": "._chat.store",
    "sessions": "._chat.sessions",
    "set_price": "._client.pricing",
    "templates": "._chat.templates.library",
    "tool": "._client.tools",
    "usage": "._client.usage",
}


def _as_public(value: Any) -> Any:
    """Name an export after the package (as httpx does): reprs, help() and tracebacks say
    ``llm_magics.Client``, not where it happens to be defined, and pickles refer to the
    public name."""
    if isinstance(value, type) or callable(value):
        with contextlib.suppress(AttributeError, TypeError):  # a builtin type refuses it
            value.__module__ = __name__
    return value


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llm_magics' has no attribute {name!r}")
    value = _as_public(getattr(importlib.import_module(module, __name__), name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def client(model: str | None = None, **options: Any) -> Client:
    """A client for ``"provider:model"``, an alias, or None for this kernel's default model.

    Options: ``api_key=``, ``base_url=``, ``timeout=`` (seconds for a whole request),
    ``cache=False`` (or ``cache="redis://host:6379/0"``, a cache shared by a team or a Ray
    job), and defaults for every call such as ``temperature=`` or ``system=``.
    """
    from ._client.registry import current_registry

    return current_registry().client(model, **options)


def register(name: str, base_url: str, *, api_key_env: str | None = None, **options: Any) -> None:
    """Make an OpenAI-compatible server available as ``name:MODEL``.

    Options: ``api_key=``, ``default_model=``, ``protocol=`` (``"anthropic"``, ``"gemini"``,
    ``"ollama"``; default OpenAI's), ``display_name=``, and ``like="openai"`` (any built-in
    vendor) for a proxy or gateway that should get that vendor's request quirks and media
    limits."""
    from ._client.registry import current_registry

    current_registry().register(name, base_url, api_key_env=api_key_env, **options)


def alias(name: str, model: str) -> None:
    """``lm.alias("fast", "groq:llama-3.3-70b-versatile")``, then ``lm.client("fast")``."""
    from ._client.registry import current_registry

    current_registry().alias(name, model)


def use(model: str | None) -> None:
    """Set this kernel's default model."""
    from ._client.registry import current_registry

    current_registry().use(model)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext llm_magics``: register the %%llm and %llm magics."""
    from .notebook.magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .notebook.magics import unload_ipython_extension as _unload

    _unload(ipython)


for _name in (
    "APIConnectionError", "AuthenticationError", "BadRequestError", "BudgetExceededError",
    "ConfigError",
    "ContextLengthError", "LLMError", "ModelNotFoundError", "OutputParseError", "ProviderError",
    "RateLimitError", "StreamInterruptedError", "TimeoutError", "UnknownModelError",
    "client", "register", "alias", "use", "load_ipython_extension", "unload_ipython_extension",
):  # fmt: skip
    _as_public(globals()[_name])
del _name

# DataFrame.llm / Series.llm: registered now if pandas is imported, else when it is.
from .dataframe.hook import install as _install_pandas_hook  # noqa: E402

_install_pandas_hook()
