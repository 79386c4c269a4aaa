"""The Ollama provider: its capabilities, the endpoints it calls (chat, stream, embeddings,
models) and server management (is a server answering, pull a model)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, ClassVar

from ..._core.errors import ModelNotFoundError, ProviderError
from ..._core.secrets import APIKey, SecretHeaders
from ..._core.types import ChatRequest, Response, Usage
from ..._runtime.http import Timeouts, iter_ndjson, request_json, stream_request
from ..._runtime.http_errors import error_from_response
from ..base import Provider
from ._body import build_body
from ._explain import explained
from ._parse import finish_reason, interrupted, parse_chat, tool_calls, usage_of


class OllamaProvider(Provider):
    protocol: ClassVar[str] = "ollama"
    supports_stream = True
    supports_tools = True
    supports_schema = True
    supports_embed = True
    media_kinds = frozenset({"image"})
    context_markers = ("exceeds the context length", "context length")
    #: How long :meth:`is_available` waits for an answer, in seconds.
    availability_timeout: float = 2.0

    # --- request building ----------------------------------------------------------------

    def headers(self, key: APIKey | None) -> dict[str, str]:
        out = SecretHeaders({"Accept": "application/json", **self.extra_headers})
        if key is not None:  # an Ollama behind an authenticating proxy
            out["Authorization"] = f"Bearer {key.reveal()}"
        return out

    def body(self, request: ChatRequest, *, stream: bool = False) -> dict[str, Any]:
        self.check_media(request)
        return build_body(request, stream=stream, unsupported=self.unsupported)

    # --- chat ----------------------------------------------------------------------------

    async def chat(self, request: ChatRequest, key: APIKey | None, timeouts: Timeouts) -> Response:
        body = self.body(request)
        with explained(self, request.model):
            data, _ = await request_json(
                "POST",
                f"{self.base_url}/api/chat",
                ctx=self.error_context(request.model, key),
                headers=self.headers(key),
                json_body=body,
                timeout=timeouts,
                transport=self.transport,
            )
        return self.parse_response(data, request.model)

    def parse_response(self, data: Mapping[str, Any], model: str) -> Response:
        return parse_chat(data, model, self.name)

    async def stream(
        self, request: ChatRequest, key: APIKey | None, timeouts: Timeouts
    ) -> AsyncIterator[str | Response]:
        ctx = self.error_context(request.model, key)
        body = self.body(request, stream=True)
        text: list[str] = []
        raw_calls: list[Mapping[str, Any]] = []
        last: Mapping[str, Any] = {}
        with explained(self, request.model):
            async with stream_request(
                "POST",
                f"{self.base_url}/api/chat",
                ctx=ctx,
                headers=SecretHeaders(self.headers(key), Accept="application/x-ndjson"),
                json_body=body,
                timeout=timeouts,
                transport=self.transport,
            ) as response:
                async for chunk in iter_ndjson(response, ctx, lambda: "".join(text)):
                    if "error" in chunk:
                        synthetic = type(response)(500, json=chunk, request=response.request)
                        exc = error_from_response(synthetic, ctx)
                        if text:
                            raise interrupted(ctx.provider, request.model, text, exc) from exc
                        raise exc
                    message = chunk.get("message") or {}
                    piece = message.get("content")
                    if piece:
                        text.append(piece)
                        yield piece
                    raw_calls.extend(message.get("tool_calls") or [])
                    if chunk.get("done"):
                        last = chunk
                        break
        if not last:
            if text:
                raise interrupted(ctx.provider, request.model, text, None)
            raise ProviderError(
                f"the {self.name} stream ended before the answer was complete (no done: true)",
                provider=self.name,
                model=request.model,
            )
        calls = tool_calls(raw_calls, last.get("created_at"))
        yield Response(
            text="".join(text),
            model=last.get("model") or request.model,
            provider=self.name,
            usage=usage_of(last),
            finish_reason=finish_reason(last.get("done_reason"), calls),
            tool_calls=calls,
            raw={**last, "streamed": True},
        )

    # --- embeddings and models -----------------------------------------------------------

    def default_embed_model(self) -> str:
        return "nomic-embed-text"

    async def embed(
        self, model: str, texts: Sequence[str], key: APIKey | None, timeouts: Timeouts
    ) -> tuple[list[list[float]], Usage]:
        with explained(self, model):
            data, _ = await request_json(
                "POST",
                f"{self.base_url}/api/embed",
                ctx=self.error_context(model, key),
                headers=self.headers(key),
                json_body={"model": model, "input": list(texts)},
                timeout=timeouts,
                transport=self.transport,
            )
        vectors = [[float(x) for x in row] for row in data.get("embeddings") or []]
        if len(vectors) != len(texts):
            raise ProviderError(
                f"{self.name} returned {len(vectors)} embeddings for {len(texts)} texts",
                provider=self.name,
                model=model,
            )
        return vectors, Usage(input_tokens=int(data.get("prompt_eval_count") or 0))

    async def list_models(self, key: APIKey | None, timeouts: Timeouts) -> list[str]:
        with explained(self, None):
            data, _ = await request_json(
                "GET",
                f"{self.base_url}/api/tags",
                ctx=self.error_context(None, key),
                headers=self.headers(key),
                timeout=timeouts,
                transport=self.transport,
            )
        return sorted(str(m.get("name") or m.get("model")) for m in data.get("models") or [])

    # --- server management ---------------------------------------------------------------

    async def is_available(self, timeout: float | None = None) -> bool:
        """True when an Ollama server answers at ``base_url`` within ``timeout`` seconds
        (default :attr:`availability_timeout`). Never raises."""
        wait = timeout if timeout is not None else self.availability_timeout
        try:
            await request_json(
                "GET",
                f"{self.base_url}/api/version",
                ctx=self.error_context(None, None),
                headers=self.headers(None),
                timeout=Timeouts(connect=wait, total=wait, idle=wait),
                transport=self.transport,
            )
        except Exception:
            return False
        return True

    async def ensure_model(
        self,
        name: str,
        *,
        progress: Callable[[Mapping[str, Any]], None] | None = None,
        timeouts: Timeouts | None = None,
    ) -> bool:
        """Make sure model ``name`` is installed, pulling it when it is not. Returns True when
        it was pulled, False when it was already there. ``progress`` receives each status
        event of the pull (``{"status", "total", "completed"}``). Raises ModelNotFoundError
        when the registry has no such model, ProviderError when the pull fails otherwise."""
        t = timeouts or Timeouts()
        installed = {_canonical(n) for n in await self.list_models(None, t)}
        if _canonical(name) in installed:
            return False
        ctx = self.error_context(name, None)
        with explained(self, None):
            async with stream_request(
                "POST",
                f"{self.base_url}/api/pull",
                ctx=ctx,
                headers={**self.headers(None), "Accept": "application/x-ndjson"},
                json_body={"model": name, "stream": True},
                timeout=t,
                transport=self.transport,
            ) as response:
                async for event in iter_ndjson(response, ctx, lambda: ""):
                    if "error" in event:
                        message = str(event["error"])
                        missing = "not exist" in message or "not found" in message
                        kind = ModelNotFoundError if missing else ProviderError
                        raise kind(
                            f"{self.display_name} could not pull {name!r}: {message}. Check "
                            "the name at https://ollama.com/library.",
                            provider=self.name,
                            model=name,
                        )
                    if progress is not None:
                        progress(event)
                    if event.get("status") == "success":
                        return True
        raise ProviderError(
            f"{self.display_name}'s pull of {name!r} ended without reporting success; run "
            f"`ollama pull {name}` to see why.",
            provider=self.name,
            model=name,
        )


def _canonical(name: str) -> str:
    return name if ":" in name else f"{name}:latest"
