"""The Anthropic provider: its capabilities, headers and the endpoints it calls."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

from ..._core.batch import BatchItem, BatchJob
from ..._core.secrets import APIKey, SecretHeaders
from ..._core.types import ChatRequest, Response
from ..._runtime.http import Timeouts, iter_sse, request_json, stream_request
from ..._runtime.http import decode_event as _decode
from ..._runtime.http_errors import truncated_stream_error
from ..base import Provider
from . import _batch
from ._body import build_body
from ._parse import parse_message
from ._stream import StreamedMessage, stream_error

API_VERSION = "2023-06-01"


class AnthropicProvider(Provider):
    protocol: ClassVar[str] = "anthropic"
    supports_stream = True
    supports_tools = True
    supports_schema = True
    speaks_batch = True
    media_kinds = frozenset({"image", "document"})
    context_markers = ("prompt is too long", "exceed context limit")

    # --- request building ----------------------------------------------------------------

    def headers(self, key: APIKey | None) -> dict[str, str]:
        out = SecretHeaders(
            {
                "accept": "application/json",
                "content-type": "application/json",
                "anthropic-version": API_VERSION,
                **self.extra_headers,
            }
        )
        if key is not None:
            out["x-api-key"] = key.reveal()
        return out

    def body(self, request: ChatRequest, *, stream: bool = False) -> dict[str, Any]:
        self.check_media(request)
        return build_body(self, request, stream=stream)

    # --- chat ----------------------------------------------------------------------------

    async def chat(self, request: ChatRequest, key: APIKey | None, timeouts: Timeouts) -> Response:
        data, _ = await request_json(
            "POST",
            f"{self.base_url}/v1/messages",
            ctx=self.error_context(request.model, key),
            headers=self.headers(key),
            json_body=self.body(request),
            timeout=timeouts,
            transport=self.transport,
        )
        return self.parse_response(data, request)

    def parse_response(self, data: Mapping[str, Any], request: ChatRequest) -> Response:
        return parse_message(data, request, self.name)

    async def stream(
        self, request: ChatRequest, key: APIKey | None, timeouts: Timeouts
    ) -> AsyncIterator[str | Response]:
        ctx = self.error_context(request.model, key)
        message = StreamedMessage(request)
        finished = False
        async with stream_request(
            "POST",
            f"{self.base_url}/v1/messages",
            ctx=ctx,
            headers=SecretHeaders(self.headers(key), accept="text/event-stream"),
            json_body=self.body(request, stream=True),
            timeout=timeouts,
            transport=self.transport,
        ) as response:
            async for event, data in iter_sse(response, ctx, message.arrived):
                payload = _decode(data, ctx)
                kind = payload.get("type") or event
                if kind == "error":
                    raise stream_error(payload, response, ctx, message.arrived())
                if kind == "message_stop":
                    finished = True
                    break
                piece = message.take(kind, payload)
                if piece is not None:
                    yield piece
        if not finished:
            raise truncated_stream_error(ctx, message.arrived(), "message_stop")
        final = self.parse_response(message.as_answer(), request)
        if request.schema is not None and not message.live_json and final.text:
            yield final.text
        final.raw = message.raw()
        yield final

    # --- models --------------------------------------------------------------------------

    async def list_models(self, key: APIKey | None, timeouts: Timeouts) -> list[str]:
        ids: list[str] = []
        params = {"limit": "1000"}
        while True:
            data, _ = await request_json(
                "GET",
                f"{self.base_url}/v1/models",
                ctx=self.error_context(None, key),
                headers=self.headers(key),
                params=params,
                timeout=timeouts,
                transport=self.transport,
            )
            ids += [str(m["id"]) for m in data.get("data") or [] if m.get("id")]
            if not data.get("has_more") or not data.get("last_id"):
                return sorted(ids)
            params = {"limit": "1000", "after_id": str(data["last_id"])}

    # --- Message Batches --------------------------------------------------------------------

    async def batch_submit(
        self, items: Sequence[tuple[str, ChatRequest]], key: APIKey | None, timeouts: Timeouts
    ) -> BatchJob:
        requests = [{"custom_id": cid, "params": self.body(request)} for cid, request in items]
        data, _ = await request_json(
            "POST",
            f"{self.base_url}/v1/messages/batches",
            json_body={"requests": requests},
            **self.http_options(key, timeouts),
        )
        return _batch.job_of(data, self.base_url)

    async def batch_status(self, job_id: str, key: APIKey | None, timeouts: Timeouts) -> BatchJob:
        data, _ = await request_json(
            "GET",
            f"{self.base_url}/v1/messages/batches/{job_id}",
            **self.http_options(key, timeouts),
        )
        return _batch.job_of(data, self.base_url)

    async def batch_cancel(self, job_id: str, key: APIKey | None, timeouts: Timeouts) -> BatchJob:
        data, _ = await request_json(
            "POST",
            f"{self.base_url}/v1/messages/batches/{job_id}/cancel",
            **self.http_options(key, timeouts),
        )
        return _batch.job_of(data, self.base_url)

    async def batch_results(
        self,
        job: BatchJob,
        requests: Mapping[str, ChatRequest],
        key: APIKey | None,
        timeouts: Timeouts,
    ) -> list[BatchItem]:
        return await _batch.read_results(
            job, self.parse_response, requests, **self.http_options(key, timeouts)
        )
