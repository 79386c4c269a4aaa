"""Where settings come from: arguments first, then the environment, then ``.env`` in the working
directory (loaded once, never overriding a variable that is already set).

Each built-in provider is described by a :class:`ProviderInfo`: which env vars hold its keys
and base URL, its documented default base URL, and a sensible default model.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BUILTIN_PROVIDERS", "ProviderInfo", "keys_from_env", "load_dotenv_once"]


@dataclass(frozen=True)
class ProviderInfo:
    name: str
    display_name: str
    protocol: str  # module in llm_magics.providers
    key_envs: tuple[str, ...]  # single-key variables, in order of preference
    keys_env: str | None  # comma-separated pool for rotation
    base_url_env: str | None
    default_base_url: str
    default_model: str
    needs_key: bool = True

    @property
    def primary_key_env(self) -> str | None:
        return self.key_envs[0] if self.key_envs else None

    def base_url(self) -> str:
        load_dotenv_once()
        url = os.environ.get(self.base_url_env, "") if self.base_url_env else ""
        url = url.strip() or self.default_base_url
        if self.name == "ollama":
            url = normalise_ollama_host(url)
        return url.rstrip("/")


def normalise_ollama_host(value: str) -> str:
    """OLLAMA_HOST may be ``host``, ``host:port`` or a URL (Ollama's own convention)."""
    if "://" not in value:
        value = "http://" + value
    scheme, _, rest = value.partition("://")
    hostport = rest.split("/", 1)[0]
    host = hostport.rsplit(":", 1)[0] if ":" in hostport.lstrip("[") else hostport
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    port = hostport.rsplit(":", 1)[1] if ":" in hostport.lstrip("[") else "11434"
    return f"{scheme}://{host}:{port}"


BUILTIN_PROVIDERS: dict[str, ProviderInfo] = {
    p.name: p
    for p in (
        ProviderInfo(
            "openai", "OpenAI", "openai_compat", ("OPENAI_API_KEY",), "OPENAI_API_KEYS",
            "OPENAI_BASE_URL", "https://api.openai.com/v1", "gpt-4o-mini",
        ),
        ProviderInfo(
            "anthropic", "Anthropic", "anthropic", ("ANTHROPIC_API_KEY",), "ANTHROPIC_API_KEYS",
            "ANTHROPIC_BASE_URL", "https://api.anthropic.com", "claude-haiku-4-5",
        ),
        ProviderInfo(
            "gemini", "Gemini", "gemini", ("GEMINI_API_KEY", "GOOGLE_API_KEY"), "GEMINI_API_KEYS",
            "GEMINI_BASE_URL", "https://generativelanguage.googleapis.com", "gemini-2.5-flash",
        ),
        ProviderInfo(
            "groq", "Groq", "openai_compat", ("GROQ_API_KEY",), "GROQ_API_KEYS",
            "GROQ_BASE_URL", "https://api.groq.com/openai/v1", "llama-3.3-70b-versatile",
        ),
        ProviderInfo(
            "cerebras", "Cerebras", "openai_compat", ("CEREBRAS_API_KEY",), "CEREBRAS_API_KEYS",
            "CEREBRAS_BASE_URL", "https://api.cerebras.ai/v1", "llama3.1-8b",
        ),
        ProviderInfo(
            "ollama", "Ollama", "ollama", (), None, "OLLAMA_HOST", "http://127.0.0.1:11434",
            "llama3.2", needs_key=False,
        ),
        ProviderInfo(
            "local", "local (embedded SmolLM2)", "local", (), None, None, "", "smollm2-135m",
            needs_key=False,
        ),
    )
}  # fmt: skip

_dotenv_lock = threading.Lock()
_dotenv_loaded: set[Path] = set()


def load_dotenv_once(directory: Path | None = None) -> None:
    """Load ``.env`` from ``directory`` (default: the working directory) once per directory.
    Variables already in the environment win."""
    path = (directory or Path.cwd()) / ".env"
    with _dotenv_lock:
        if path in _dotenv_loaded:
            return
        _dotenv_loaded.add(path)
        if not path.is_file():
            return
        from dotenv import load_dotenv

        load_dotenv(path, override=False)


def keys_from_env(info: ProviderInfo) -> tuple[list[str], str | None]:
    """(keys, name of the variable they came from). ``<P>_API_KEYS`` (comma-separated) wins
    over the single-key variables."""
    load_dotenv_once()
    if info.keys_env:
        pooled = [k.strip() for k in os.environ.get(info.keys_env, "").split(",") if k.strip()]
        if pooled:
            return list(dict.fromkeys(pooled)), info.keys_env
    for env in info.key_envs:
        value = os.environ.get(env, "").strip()
        if value:
            return [value], env
    return [], None
