"""The names of cached answers: the key of a request (the same in every cache, disk or
Redis) and the ``provider:model`` tag that ``clear(model)`` matches. Pure functions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._core.types import ChatRequest
from ..providers.catalog import undated
from .codec import FORMAT_VERSION, _canonical, request_digest

if TYPE_CHECKING:
    from ..providers.base import Provider

__all__ = ["response_key", "tag_matches"]


def response_key(provider: Provider, request: ChatRequest) -> str:
    """The key of ``request``'s answer in every cache (disk and Redis): hex SHA-256 of
    everything that can change the answer, never the API key."""
    fingerprint = request.fingerprint()
    for name in ("temperature", "top_p"):
        value = fingerprint.get(name)
        if isinstance(value, float) and value.is_integer():
            fingerprint[name] = int(value)
    if fingerprint.get("extra"):
        fingerprint["extra"] = _canonical(fingerprint["extra"])
    payload = [
        FORMAT_VERSION,
        provider.name,
        getattr(provider, "protocol", ""),
        provider.base_url.rstrip("/").lower(),
        fingerprint,
    ]
    return request_digest(payload)


def tag_matches(tag: str, wanted: str) -> bool:
    if ":" not in wanted:
        return tag.startswith(wanted + ":")
    if tag == wanted:
        return True
    provider, _, model = tag.partition(":")
    return f"{provider}:{undated(model)}" == wanted
