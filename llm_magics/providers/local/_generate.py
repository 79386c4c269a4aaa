"""One generation on the embedded llama.cpp model, run on the worker thread: the prompt
tokens, the JSON grammar, the stopping criterion where a cancel or timeout lands, and the
completion itself, whole or streamed."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from ..._core.errors import ContextLengthError, TimeoutError
from ..._local import model as embedded
from ._plan import Generation, _Plan

DEFAULT_MAX_TOKENS = 1024


def generate(
    plan: _Plan,
    emit: Callable[[str], None] | None,
    cancel: threading.Event,
    limit: float,
    *,
    per_token: bool,
) -> Generation:
    """Run one generation on the worker thread. ``emit`` receives text as it is produced (a
    stream); ``limit`` bounds the whole generation, or with ``per_token`` each token's wait."""
    model = embedded.chat_model()
    llama, request = model.llama, plan.request
    formatted = model.formatter(messages=plan.messages(model.default_system))
    prompt, n_ctx = _prompt_tokens(llama, formatted, plan)
    grammar, kind = _plan_grammar(plan)

    from llama_cpp import StoppingCriteriaList

    deadline = _Deadline(cancel, limit, per_token=per_token)
    criteria = [deadline.should_stop]
    if formatted.stopping_criteria is not None:
        criteria.insert(0, formatted.stopping_criteria)
    stop = list(request.stop or [])
    if formatted.stop:
        stop += [formatted.stop] if isinstance(formatted.stop, str) else list(formatted.stop)
    max_tokens = min(request.max_tokens or DEFAULT_MAX_TOKENS, n_ctx - len(prompt))
    options = dict(
        prompt=prompt,
        max_tokens=max_tokens,
        stop=stop,
        seed=request.seed,
        grammar=grammar,
        stopping_criteria=StoppingCriteriaList(criteria),
        **plan.sampling,
    )
    with model.lock:
        if emit is None:
            text, finish, output_tokens = _complete(llama, options)
        else:
            text, finish, output_tokens = _complete_streaming(llama, options, emit, cancel)
    if deadline.timed_out and not cancel.is_set():
        wait = "between two tokens" if per_token else "for the whole answer"
        raise TimeoutError(
            f"the local model took longer than {limit:g} s {wait} (timeout=); pass a larger "
            "timeout= or a smaller max_tokens=.",
            provider=plan.provider,
            model=request.model,
        )
    return Generation(
        text=text,
        finish_reason=finish or "stop",
        input_tokens=len(prompt),
        output_tokens=output_tokens,
        grammar=kind,
        model_file=model.path.name,
    )


def _prompt_tokens(llama: Any, formatted: Any, plan: _Plan) -> tuple[list[int], int]:
    """The prompt's tokens and the context window, refusing a prompt that fills it."""
    prompt = llama.tokenize(
        formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True
    )
    n_ctx = llama.n_ctx()
    if len(prompt) >= n_ctx:
        raise ContextLengthError(
            f"the prompt is {len(prompt)} tokens; the local model's context window is {n_ctx}. "
            "Shorten the prompt or the conversation history.",
            provider=plan.provider,
            model=plan.request.model,
        )
    return prompt, n_ctx


def _plan_grammar(plan: _Plan) -> tuple[Any, str | None]:
    """The grammar the plan asks for and its kind, or (None, None)."""
    if plan.grammar_schema is None and not plan.any_json:
        return None, None
    schema = plan.grammar_schema
    # Key order is kept: the grammar emits properties in schema order.
    return _grammar(json.dumps(schema) if schema else None)


@functools.lru_cache(maxsize=64)
def _grammar(schema_json: str | None) -> tuple[Any, str]:
    """A llama.cpp grammar for a JSON schema (or for any JSON), and which one it is."""
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar, json_schema_to_gbnf

    if schema_json is not None:
        try:
            return LlamaGrammar.from_string(
                json_schema_to_gbnf(schema_json), verbose=False
            ), "schema"
        except Exception:  # the converter raises bare Exceptions for what it lacks
            pass
    return LlamaGrammar.from_string(JSON_GBNF, verbose=False), "json"


class _Deadline:
    """The time limit of one generation, checked after every sampled token."""

    def __init__(self, cancel: threading.Event, limit: float, *, per_token: bool) -> None:
        self.cancel = cancel
        self.limit = limit
        self.per_token = per_token
        self.timed_out = False
        self.last = time.monotonic()

    def should_stop(self, _ids: Any, _logits: Any) -> bool:
        # Called by llama.cpp after every sampled token: where a cancel or timeout lands.
        now = time.monotonic()
        if now - self.last > self.limit:
            self.timed_out = True
        if self.per_token:
            self.last = now
        return self.cancel.is_set() or self.timed_out


def _complete(llama: Any, options: dict[str, Any]) -> tuple[str, Any, int]:
    """The whole completion at once: text, finish reason and output tokens."""
    done = llama.create_completion(**options, stream=False)
    text = done["choices"][0]["text"]
    finish = done["choices"][0]["finish_reason"]
    return text, finish, int(done["usage"]["completion_tokens"])


def _complete_streaming(
    llama: Any, options: dict[str, Any], emit: Callable[[str], None], cancel: threading.Event
) -> tuple[str, Any, int]:
    """The completion streamed through ``emit``; its output tokens are the text re-tokenised."""
    pieces: list[str] = []
    finish = None
    chunks = llama.create_completion(**options, stream=True)
    try:
        for chunk in chunks:
            choice = chunk["choices"][0]
            if choice["text"]:
                pieces.append(choice["text"])
                emit(choice["text"])
            finish = choice.get("finish_reason") or finish
            if cancel.is_set():
                break
    finally:
        chunks.close()
    text = "".join(pieces)
    output_tokens = len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))
    return text, finish, output_tokens
