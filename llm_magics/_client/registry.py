"""The per-kernel registry: which providers exist, their keys, aliases, and the default model.

One registry lives in each kernel's session (:func:`current_registry`);
:func:`llm_magics.client` and the magics use it. Model ids are ``provider:model`` (split on
the first colon, so ``ollama:llama3.2:3b`` works), ``local``, an alias, a bare provider name
(its default model), or a name registered with :meth:`Registry.register`.

Thread safety: every method may be called from any thread.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import threading
from dataclasses import dataclass
from typing import Any

from .._cache.redis_store import RedisCache
from .._cache.store import CacheStats, default_cache, open_cache
from .._cache.store import ResponseCache as DiskCache
from .._core.errors import ConfigError, UnknownModelError
from .._core.session import SESSION
from .._core.settings import load_dotenv_once
from .._runtime.http import Timeouts
from .._runtime.retry import RetryPolicy
from ..providers.base import Provider
from ..providers.catalog import VENDORS, Vendor, keys_from_env
from .client import Client, ResponseCache
from .keys import KeyPool
from .pricing import ProfileOverrides

__all__ = ["Registry", "cache_stats", "clear_cache", "current_registry"]

_PROTOCOLS = {
    "openai_compat": "OpenAICompatProvider",
    "anthropic": "AnthropicProvider",
    "gemini": "GeminiProvider",
    "ollama": "OllamaProvider",
    "local": "LocalProvider",
}
# When several keys are configured, the default model comes from the first of these.
_DEFAULT_ORDER = ("openai", "anthropic", "gemini", "groq", "cerebras")


@dataclass(frozen=True)
class ModelRef:
    provider: str
    model: str

    def __str__(self) -> str:
        return self.provider if self.provider == "local" else f"{self.provider}:{self.model}"


class Registry:
    """Providers, aliases, key pools and the default model of one kernel."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._custom: dict[str, Vendor] = {}
        self._custom_keys: dict[str, list[str]] = {}
        self._aliases: dict[str, str] = {}
        self._default: str | None = None
        self._providers: dict[str, Provider] = {}
        self._pools: dict[str, tuple[tuple[str, ...], KeyPool]] = {}
        self._cache: ResponseCache | None = None
        self._cache_set = False
        self.retry = RetryPolicy()
        self.timeouts = Timeouts()

    @property
    def cache(self) -> ResponseCache | None:
        """The response cache new clients use: unless set (None disables it), the disk cache
        of the current ``LLM_MAGICS_CACHE_DIR``, opened on first use."""
        if not self._cache_set:
            return default_cache()
        return self._cache

    @cache.setter
    def cache(self, value: ResponseCache | None) -> None:
        self._cache, self._cache_set = value, True

    # --- configuration -------------------------------------------------------------------

    def register(
        self,
        name: str,
        base_url: str,
        *,
        api_key_env: str | None = None,
        api_key: str | None = None,
        default_model: str = "",
        protocol: str | None = None,
        display_name: str | None = None,
        like: str | None = None,
    ) -> None:
        """Add an OpenAI-compatible server (or another ``protocol``) under ``name``.

        ``like="openai"`` (any built-in vendor) makes it behave as that vendor: its protocol,
        request quirks (such as OpenAI's ``max_completion_tokens``), media limits and model
        prices, for a proxy or gateway in front of it (``lm.set_price`` corrects a price)."""
        if not name or ":" in name or name in VENDORS:
            raise ConfigError(
                f"cannot register {name!r}: a name must be non-empty, have no ':', and not be "
                f"a built-in provider ({', '.join(VENDORS)})"
            )
        if like is not None and like not in VENDORS:
            raise ConfigError(f"like= names a built-in vendor ({', '.join(VENDORS)}); got {like!r}")
        base = VENDORS[like] if like is not None else None
        protocol = protocol or (base.protocol if base else "openai_compat")
        if protocol not in _PROTOCOLS:
            raise ConfigError(f"protocol must be one of {', '.join(_PROTOCOLS)}; got {protocol!r}")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must start with http:// or https://; got {base_url!r}")
        plain = Vendor(name, name, protocol, (), None, None, "", "")
        info = (base or plain).like(
            name,
            base_url,
            display_name=display_name or name,
            protocol=protocol,
            key_envs=(api_key_env,) if api_key_env else (),
            default_model=default_model,
            needs_key=bool(api_key_env or api_key),
        )
        SESSION.get(ProfileOverrides).adopt(info)
        with self._lock:
            self._custom[name] = info
            self._custom_keys[name] = [api_key] if api_key else []
            self._providers.pop(name, None)
            self._pools.pop(name, None)

    def alias(self, name: str, model_id: str) -> None:
        if not name or ":" in name:
            raise ConfigError(f"an alias must be non-empty and contain no ':'; got {name!r}")
        with self._lock:
            chain, target = [name], model_id
            while target in self._aliases or target == name:
                if target in chain:
                    raise ConfigError(
                        f"alias {name} -> {model_id} would make a cycle "
                        f"({' -> '.join([*chain, target])}); point it at a provider:model"
                    )
                chain.append(target)
                target = self._aliases[target]
        self.resolve(model_id)  # fail now, not at first use
        with self._lock:
            self._aliases[name] = model_id

    @property
    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def use(self, model_id: str | None) -> None:
        """Set the default model of this kernel (None goes back to the automatic choice)."""
        if model_id is not None:
            self.resolve(model_id)
        with self._lock:
            self._default = model_id

    def default_model(self) -> str:
        """Explicit ``use`` > ``LLM_MAGICS_DEFAULT_MODEL`` > the first provider with a key >
        ``local``."""
        if self._default:
            return self._default
        load_dotenv_once()
        env = os.environ.get("LLM_MAGICS_DEFAULT_MODEL", "").strip()
        if env:
            return env
        for name in _DEFAULT_ORDER:
            info = VENDORS[name]
            if keys_from_env(info)[0]:
                return f"{name}:{info.default_model}"
        return "local"

    def info(self, name: str) -> Vendor:
        found = self._custom.get(name) or VENDORS.get(name)
        if found is None:
            known = ", ".join([*VENDORS, *self._custom])
            raise UnknownModelError(
                f"unknown provider {name!r}. Known: {known}. Register an OpenAI-compatible "
                f"server with lm.register({name!r}, base_url=...) or `%llm register`."
            )
        return found

    def resolve(self, model_id: str | None) -> ModelRef:
        """Turn a model id, alias or provider name into (provider, model)."""
        target = (model_id or "").strip() or self.default_model()
        seen = set()
        while target in self._aliases and target not in seen:
            seen.add(target)
            target = self._aliases[target]
        provider, sep, model = target.partition(":")
        if not sep:
            if provider in VENDORS or provider in self._custom:
                info = self.info(provider)
                if not info.default_model:
                    raise UnknownModelError(
                        f"{provider!r} has no default model; write {provider}:MODEL"
                    )
                return ModelRef(provider, info.default_model)
            raise UnknownModelError(
                f"unknown model {target!r}: write provider:model, e.g. openai:gpt-4o-mini, "
                f"anthropic:claude-haiku-4-5, ollama:llama3.2, or `local`. Providers: "
                f"{', '.join([*VENDORS, *self._custom])}; aliases: "
                f"{', '.join(self._aliases) or 'none'}."
            )
        self.info(provider)
        if not model:
            raise UnknownModelError(f"model id {target!r} names no model after the colon")
        return ModelRef(provider, model)

    def provider_of(self, target: str | None) -> str:
        """The provider of a provider name, alias or model id (None: the default model's)."""
        target = (target or "").strip() or self.default_model()
        if target in VENDORS or target in self._custom:
            return target
        return self.resolve(target).provider

    def list_models(self, target: str | None = None) -> list[str]:
        """The models the provider of ``target`` lists (asked live, where its API lists them;
        ``local``: the embedded files). Needs the provider's key, as a call does."""
        name = self.provider_of(target)
        info = self.info(name)
        return self.client(f"{name}:{info.default_model or 'default'}").list_models()

    # --- building clients ----------------------------------------------------------------

    def _keys_for(self, info: Vendor) -> tuple[list[str], str | None]:
        if info.name in self._custom:
            if self._custom_keys.get(info.name):
                return self._custom_keys[info.name], None
            env = info.primary_key_env
            value = os.environ.get(env, "").strip() if env else ""
            return ([value], env) if value else ([], env)
        return keys_from_env(info)

    def key_pool(self, name: str) -> KeyPool | None:
        """The shared pool of ``name`` (rebuilt when its keys in the environment change)."""
        info = self.info(name)
        keys, env = self._keys_for(info)
        if not keys:
            return None
        with self._lock:
            current = self._pools.get(name)
            if current is not None and current[0] == tuple(keys):
                return current[1]
            pool = KeyPool(name, keys, env=env or info.primary_key_env)
            self._pools[name] = (tuple(keys), pool)
            return pool

    def provider(
        self, name: str, *, base_url: str | None = None, transport: Any = None
    ) -> Provider:
        info = self.info(name)
        if base_url is None and transport is None:
            with self._lock:
                cached = self._providers.get(name)
                if cached is not None and cached.base_url == info.base_url():
                    return cached
        instance = build_provider(info, base_url or info.base_url(), transport=transport)
        if base_url is None and transport is None:
            with self._lock:
                self._providers[name] = instance
        return instance

    def client(
        self,
        model_id: str | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        transport: Any = None,
        cache: ResponseCache | bool | str | None = True,
        retry: RetryPolicy | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
        **defaults: Any,
    ) -> Client:
        ref = self.resolve(model_id)
        info = self.info(ref.provider)
        provider = self.provider(ref.provider, base_url=base_url, transport=transport)
        if api_key is not None:
            pool: KeyPool | None = KeyPool(ref.provider, [api_key], env=info.primary_key_env)
        else:
            pool = self.key_pool(ref.provider)
        if pool is None and info.needs_key:
            raise ConfigError(missing_key_message(info), provider=ref.provider, model=ref.model)
        if cache is True:
            use_cache = self.cache
        elif cache is False or cache is None:
            use_cache = None
        elif isinstance(cache, str):
            use_cache = _cache_at(cache)
        else:
            use_cache = cache
        timeouts = self.timeouts.replace(timeout)
        return Client(
            provider,
            ref.model,
            keys=pool,
            cache=use_cache,
            retry=_retry_policy(retry or self.retry, max_retries),
            timeouts=timeouts,
            defaults=defaults,
        )

    def providers(self) -> list[dict[str, Any]]:
        """One row per provider: key status (configured/missing, never the key), base URL."""
        rows = []
        for name in [*VENDORS, *self._custom]:
            info = self.info(name)
            keys, env = self._keys_for(info)
            if not info.needs_key:
                status = "no key needed"
            elif keys:
                status = f"configured ({len(keys)} key{'s' if len(keys) > 1 else ''}, {env or 'argument'})"
            else:
                status = f"missing (set {info.primary_key_env})"
            rows.append(
                {
                    "provider": name,
                    "key": status,
                    "base_url": info.base_url() or "(embedded)",
                    "default_model": info.default_model,
                }
            )
        return rows


def build_provider(info: Vendor, base_url: str, *, transport: Any = None) -> Provider:
    """A provider of ``info``'s protocol at ``base_url`` (also how a Ray worker rebuilds
    the driver's)."""
    module = importlib.import_module(f"llm_magics.providers.{info.protocol}")
    cls = getattr(module, _PROTOCOLS[info.protocol])
    instance: Provider = cls(
        info.name,
        base_url,
        display_name=info.display_name,
        key_env=info.primary_key_env,
        transport=transport,
        default_model=info.default_model,
        vendor=info,
    )
    return instance


def _retry_policy(base: RetryPolicy, max_retries: int | None) -> RetryPolicy:
    if max_retries is None:
        return base
    if max_retries < 0:
        raise ConfigError(f"max_retries must be 0 or more; got {max_retries}")
    return dataclasses.replace(base, max_retries=max_retries)


def missing_key_message(info: Vendor) -> str:
    env = info.primary_key_env or "the API key variable"
    pool = f" (or {info.keys_env}=k1,k2 for rotation)" if info.keys_env else ""
    return (
        f"no API key for {info.display_name}: set {env}{pool} in the environment or in a .env "
        "file in the working directory, or pass api_key=. Without any key, the embedded "
        "`local` model works offline."
    )


def current_registry() -> Registry:
    """This kernel's registry (a part of :data:`~llm_magics._core.session.SESSION`)."""
    return SESSION.get(Registry)


_opened_lock = threading.Lock()
_opened: dict[str, DiskCache | RedisCache] = {}


def _cache_at(where: str) -> DiskCache | RedisCache:
    """``cache="redis://..."`` or ``cache="/some/dir"``: one cache object per place, shared
    by the clients that name it."""
    if not where.strip():
        raise ConfigError(
            "cache= takes True, False, a redis:// URL or a directory; got an empty string"
        )
    with _opened_lock:
        found = _opened.get(where)
        if found is None:
            found = _opened[where] = open_cache(where)
        return found


def _current_cache() -> DiskCache | RedisCache:
    cache = current_registry().cache
    return cache if isinstance(cache, DiskCache | RedisCache) else default_cache()


def cache_stats() -> CacheStats:
    """``lm.cache_stats()``: entries, size, limit, expiry, and this session's hits."""
    return _current_cache().stats()


def clear_cache(model: str | None = None, *, expired: bool = False) -> int:
    """``lm.clear_cache()``: remove every cached answer (or those of ``model``, e.g.
    ``"openai:gpt-4o-mini"`` or ``"openai"``; or only ``expired=True`` ones). Returns how
    many were removed."""
    return _current_cache().clear(model, expired=expired)
