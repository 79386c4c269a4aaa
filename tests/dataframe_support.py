"""The scriptable OpenAI-compatible backend of the df.llm tests: an httpx2 transport that
validates every request against OpenAI's published spec (SpecTransport), with latency that
varies per prompt (so completion order differs from input order), per-prompt failures,
rate-limit windows, and answers derived from the prompt."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pandas as pd

import llm_magics as lm
from llm_magics._runtime.retry import RetryPolicy
from tests.support.specs import SpecTransport

KEY = "sk-test-dataframe-0123456789"


def answer_for(prompt: str) -> str:
    """The backend's deterministic answer: derived from the prompt, so tests can check that
    each row got the answer to its own prompt."""
    return f"A:{prompt}"


@dataclass
class Backend:
    """An OpenAI-compatible chat backend with latency and injectable faults."""

    latency: float = 0.01
    jitter: float = 0.0
    error_rate: float = 0.0
    fail_when: str | None = None  # prompts containing this always get a 500
    status: int = 500
    rate_limit_window: tuple[float, float] | None = None  # 429 until time.monotonic() >= end
    answer: Any = None  # prompt, body -> content
    prompts: list[str] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    limited: list[float] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(1234))

    @property
    def count(self) -> int:
        return len(self.prompts)

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Any:
        body = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
        return httpx2.Response(status, json=body, headers=headers or {})

    async def handle(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        content = body["messages"][-1]["content"]
        text = (
            content
            if isinstance(content, str)
            else " ".join(p.get("text", f"<{p['type']}>") for p in content)
        )
        self.prompts.append(text)
        self.bodies.append(body)
        now = time.monotonic()
        self.arrivals.append(now)
        window = self.rate_limit_window
        if window is not None and now < window[1]:
            self.limited.append(now)
            wait = window[1] - now
            return self.error(429, "Rate limit reached", {"retry-after": f"{wait:.3f}"})
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            delay = self.latency + self.jitter * unit(text)
            await asyncio.sleep(delay)
        finally:
            self.in_flight -= 1
        if self.fail_when is not None and self.fail_when in text:
            return self.error(self.status, "The server had an error")
        if self.error_rate and self.rng.random() < self.error_rate:
            return self.error(500, "The server had an error")
        reply = self.answer(text, body) if self.answer else answer_for(text)
        return httpx2.Response(200, json=completion(reply))

    def transport(self) -> SpecTransport:
        return SpecTransport("openai", self.handle)


def unit(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }


def client_for(backend: Backend, *, max_retries: int = 4, **options: Any) -> lm.Client:
    """A client whose requests go to ``backend``, with fast retries."""
    lm.register("srv", "http://llm.test/v1", api_key=KEY)
    retry = RetryPolicy(max_retries=max_retries, backoff_base=0.005, backoff_max=0.02)
    return lm.client("srv:gpt-4o-mini", transport=backend.transport(), retry=retry, **options)


def reviews(n: int, *, seed: int = 7) -> pd.DataFrame:
    """``n`` rows with a shuffled, non-default index."""
    index = [f"r{i:03d}" for i in range(n)]
    random.Random(seed).shuffle(index)
    return pd.DataFrame(
        {"review": [f"review number {i}" for i in range(n)], "stars": list(range(n))},
        index=pd.Index(index, name="id"),
    )
