"""Ollama's two everyday failures explained: the server is not running, or the model is not
pulled yet; each error is raised again with what to do about it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..._core.errors import APIConnectionError, ModelNotFoundError
from ..base import Provider


@contextlib.contextmanager
def explained(provider: Provider, model: str | None) -> Iterator[None]:
    """Say what to do when the server is not running or lacks the model."""
    import httpx2

    try:
        yield
    except APIConnectionError as exc:
        if not isinstance(exc.__cause__, httpx2.ConnectError):
            raise  # reached the server, then lost it: "not running" would be wrong
        raise APIConnectionError(
            f"{provider.display_name} is not running at {provider.base_url} ({exc.message}). "
            "Start it with `ollama serve` (or open the Ollama app), or set OLLAMA_HOST "
            "to the address it listens on.",
            provider=provider.name,
            model=model,
            request=exc.request,
        ) from exc
    except ModelNotFoundError as exc:
        if model is None:
            raise
        raise ModelNotFoundError(
            f"{exc.message} Pull it first: `ollama pull {model}`, or "
            f"`await client.provider.ensure_model({model!r})`.",
            status_code=exc.status_code,
            provider=provider.name,
            model=model,
            request=exc.request,
            response=exc.response,
        ) from exc
