"""The public surface: a curated __all__, every name importable, and an import that stays light."""

from __future__ import annotations

import subprocess
import sys

import llm_magics as lm

EXPECTED_PUBLIC = {
    "APIConnectionError", "Audio", "AuthenticationError", "BadRequestError", "Client",
    "ConfigError", "ContextLengthError", "Image", "LLMError", "Message", "ModelNotFoundError",
    "OutputParseError", "ProviderError", "RateLimitError", "Response", "StreamInterruptedError",
    "TimeoutError", "ToolCall", "Transcript", "UnknownModelError", "Usage", "__version__",
    "alias", "cache_stats", "clear_cache", "client", "count_tokens", "load_ipython_extension",
    "model_profile", "register", "register_model_profile", "reset_usage", "serve_local",
    "set_price", "tool", "unload_ipython_extension", "usage", "use",
    # Conversations (issue 14): the class, and the kernel's named sessions.
    "Conversation", "chat_widget", "session", "sessions",
    # Prompt templates (issue 15): the class, and the library of built-in and user templates.
    "Template", "templates",
    # The terminal (issue 19): the saved sessions that `llm-magics` and notebooks share.
    "session_store",
    # Cost at scale (issue 17): the kernel's budget and the refusal it raises.
    "budget", "BudgetExceededError",
    # Tools, agents and typed stream events (issue 16).
    "Agent", "StreamEvent", "Tool", "ToolRegistry", "collect", "sse",
    # Beyond one machine (issue 18): lm.ray.map over a ray.data.Dataset.
    "ray",
}  # fmt: skip


def test_all_lists_the_public_api_and_nothing_else() -> None:
    # Additions are deliberate: extend EXPECTED_PUBLIC in the same change that adds a name.
    assert set(lm.__all__) == EXPECTED_PUBLIC
    assert len(lm.__all__) == len(set(lm.__all__))
    for name in lm.__all__:
        assert getattr(lm, name) is not None, name


def test_every_error_derives_from_llm_error() -> None:
    for name in lm.__all__:
        value = getattr(lm, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert issubclass(value, lm.LLMError), name


def test_import_loads_no_heavy_library() -> None:
    code = (
        "import sys, llm_magics;"
        "heavy = [m for m in ('httpx2', 'pandas', 'numpy', 'PIL', 'IPython', 'ipywidgets', 'pydantic',"
        " 'llama_cpp', 'diskcache', 'rich', 'ray', 'redis', 'pyarrow') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_export_is_named_after_the_package() -> None:
    for name in lm.__all__:
        value = getattr(lm, name)
        if isinstance(value, type) or callable(value):
            assert value.__module__ == "llm_magics", name
    assert repr(lm.Client).startswith("<class 'llm_magics.Client'")


def test_errors_pickle_under_their_public_names() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(lm.ConfigError("set OPENAI_API_KEY")))
    assert type(error) is lm.ConfigError and str(error) == "set OPENAI_API_KEY"
