"""Ollama's native API: ``POST /api/chat`` (JSON, or NDJSON when streaming), ``POST /api/embed``,
``GET /api/tags``, ``POST /api/pull`` and ``GET /api/version``.

The host comes from ``OLLAMA_HOST`` (default http://127.0.0.1:11434); no key is needed. On top
of the provider interface, :meth:`OllamaProvider.is_available` tells whether a server answers
and :meth:`OllamaProvider.ensure_model` pulls a model that is not installed yet::

    c = lm.client("ollama:llama3.2")
    if await c.provider.is_available():
        await c.provider.ensure_model("llama3.2")

Wire notes: sampling options go under ``options`` (``num_predict`` is max_tokens); ``format``
is a JSON schema for ``schema=`` or ``"json"`` for JSON mode; images are base64 strings in a
message's ``images`` list (bytes only: Ollama does not fetch URLs); tool-call arguments are
JSON objects, not strings, and carry no id, so one is derived from the call.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from .._core.errors import (
    APIConnectionError,
    ModelNotFoundError,
    ProviderError,
    StreamInterruptedError,
)
from .._core.secrets import APIKey, SecretHeaders
from .._core.types import ChatRequest, Message, Part, Response, TextPart, ToolCall, Usage
from .._runtime.http import Timeouts, iter_ndjson, request_json, stream_request
from .._runtime.http_errors import error_from_response
from .base import Provider

__all__ = ["OllamaProvider"]

_FINISH = {"stop": "stop", "length": "length"}
_CALL_PREFIX = "ocall_"


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
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        names: dict[str, str] = {}  # tool-call id -> function name
        for m in request.messages:
            for call in m.tool_calls:
                names[call.id] = call.name
            messages.append(self._message(m, names))
        body: dict[str, Any] = {"model": request.model, "messages": messages, "stream": stream}
        options: dict[str, Any] = {}
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.max_tokens is not None:
            options["num_predict"] = request.max_tokens
        if request.top_p is not None:
            options["top_p"] = request.top_p
        if request.stop:
            options["stop"] = list(request.stop)
        if request.seed is not None:
            options["seed"] = request.seed
        if options:
            body["options"] = options
        if request.schema is not None:
            body["format"] = request.schema.json_schema
        elif request.json_mode:
            body["format"] = "json"
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters or {"type": "object", "properties": {}},
                    },
                }
                for t in request.tools
            ]
        body.update(request.extra)
        return body

    def _message(self, m: Message, names: Mapping[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {"role": m.role, "content": m.text}
        images = [self._image(p) for p in m.parts if not isinstance(p, TextPart)]
        if images:
            out["images"] = images
        if m.role == "assistant" and m.tool_calls:
            out["tool_calls"] = [
                {"function": {"name": t.name, "arguments": t.arguments}} for t in m.tool_calls
            ]
        if m.role == "tool":
            name = m.name or names.get(m.tool_call_id or "")
            if name:
                out["tool_name"] = name
        return out

    def _image(self, p: Part) -> str:
        assert not isinstance(p, TextPart)
        if p.data is None:
            raise self.unsupported(
                "images by URL", "Ollama takes image bytes: pass a file path, bytes or an image."
            )
        return p.b64()

    # --- errors ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _explained(self, model: str | None) -> Iterator[None]:
        """Say what to do when the server is not running or lacks the model."""
        import httpx2

        try:
            yield
        except APIConnectionError as exc:
            if not isinstance(exc.__cause__, httpx2.ConnectError):
                raise  # reached the server, then lost it: "not running" would be wrong
            raise APIConnectionError(
                f"{self.display_name} is not running at {self.base_url} ({exc.message}). "
                "Start it with `ollama serve` (or open the Ollama app), or set OLLAMA_HOST "
                "to the address it listens on.",
                provider=self.name,
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
                provider=self.name,
                model=model,
                request=exc.request,
                response=exc.response,
            ) from exc

    # --- chat ----------------------------------------------------------------------------

    async def chat(self, request: ChatRequest, key: APIKey | None, timeouts: Timeouts) -> Response:
        body = self.body(request)
        with self._explained(request.model):
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
        message = data.get("message") or {}
        calls = _calls(message.get("tool_calls") or [], data.get("created_at"))
        return Response(
            text=message.get("content") or "",
            model=data.get("model") or model,
            provider=self.name,
            usage=_usage(data),
            finish_reason=_finish(data.get("done_reason"), calls),
            tool_calls=calls,
            raw=dict(data),
        )

    async def stream(
        self, request: ChatRequest, key: APIKey | None, timeouts: Timeouts
    ) -> AsyncIterator[str | Response]:
        ctx = self.error_context(request.model, key)
        body = self.body(request, stream=True)
        text: list[str] = []
        raw_calls: list[Mapping[str, Any]] = []
        last: Mapping[str, Any] = {}
        with self._explained(request.model):
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
                            raise _interrupted(ctx.provider, request.model, text, exc) from exc
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
                raise _interrupted(ctx.provider, request.model, text, None)
            raise ProviderError(
                f"the {self.name} stream ended before the answer was complete (no done: true)",
                provider=self.name,
                model=request.model,
            )
        calls = _calls(raw_calls, last.get("created_at"))
        yield Response(
            text="".join(text),
            model=last.get("model") or request.model,
            provider=self.name,
            usage=_usage(last),
            finish_reason=_finish(last.get("done_reason"), calls),
            tool_calls=calls,
            raw={**last, "streamed": True},
        )

    # --- embeddings and models -----------------------------------------------------------

    def default_embed_model(self) -> str:
        return "nomic-embed-text"

    async def embed(
        self, model: str, texts: Sequence[str], key: APIKey | None, timeouts: Timeouts
    ) -> tuple[list[list[float]], Usage]:
        with self._explained(model):
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
        with self._explained(None):
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
        with self._explained(None):
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


# --- helpers ------------------------------------------------------------------------------


def _canonical(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


def _calls(raw: Sequence[Mapping[str, Any]], stamp: Any) -> list[ToolCall]:
    calls = []
    for index, tc in enumerate(raw):
        fn = tc.get("function") or {}
        if not fn.get("name"):
            continue
        args = fn.get("arguments") or {}
        call_id = tc.get("id") or _call_id(stamp, index, fn["name"], args)
        calls.append(ToolCall.from_raw(str(call_id), fn["name"], args))
    return calls


def _call_id(stamp: Any, index: int, name: str, args: Any) -> str:
    seed = json.dumps([stamp, index, name, args], sort_keys=True, default=str)
    return _CALL_PREFIX + hashlib.sha256(seed.encode()).hexdigest()[:20]


def _finish(reason: Any, calls: list[ToolCall]) -> str | None:
    if calls:
        return "tool_calls"
    if reason is None:
        return None
    return _FINISH.get(str(reason), str(reason))


def _usage(data: Mapping[str, Any]) -> Usage:
    return Usage(
        input_tokens=int(data.get("prompt_eval_count") or 0),
        output_tokens=int(data.get("eval_count") or 0),
    )


def _interrupted(
    provider: str, model: str, text: list[str], cause: Exception | None
) -> StreamInterruptedError:
    arrived = "".join(text)
    why = f": {cause}" if cause is not None else " without done: true"
    return StreamInterruptedError(
        f"the {provider} stream broke after {len(arrived)} characters{why}. The partial "
        "answer is on .partial_text.",
        partial_text=arrived,
        provider=provider,
        model=model,
    )
