"""Summary memory: with truncation="summarize" the oldest half of the history is folded by the
summary model into a summary that travels as a system message in its place; every verbatim turn
stays in the record, summary calls count in the conversation's usage, a failing summary model
is said once and the conversation goes on, and the real local model writes a usable summary."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

import llm_magics as lm
from llm_magics._chat.budget import message_tokens
from llm_magics._chat.memory import Conversation
from llm_magics._core.types import Message
from tests.providers.test_openai_compat import completion
from tests.support.specs import SpecTransport

KEY = "sk-test-0123456789abcdef"
SUMMARY_MARK = "You keep the memory of a conversation"


class Backend:
    """An OpenAI chat backend that answers summary requests with a numbered summary and
    everything else with a fixed answer, keeping every body."""

    def __init__(self, *, fail_summaries: bool = False) -> None:
        self.fail_summaries = fail_summaries
        self.summaries = 0
        self.transport = SpecTransport("openai", self.handle)

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        import json

        body = json.loads(request.content)
        if SUMMARY_MARK in (body["messages"][0].get("content") or ""):
            if self.fail_summaries:
                return httpx2.Response(503, json={"error": {"message": "overloaded"}})
            self.summaries += 1
            return httpx2.Response(200, json=completion(f"summary number {self.summaries}"))
        reply = completion("an answer " + "z" * 40)
        sent = [Message(m["role"], m["content"]) for m in body["messages"]]
        reply["usage"]["prompt_tokens"] = sum(message_tokens(m, "gpt-4o-mini") for m in sent)
        return httpx2.Response(200, json=reply)

    @property
    def chats(self) -> list[dict[str, Any]]:
        return [
            b
            for b in self.transport.bodies
            if SUMMARY_MARK not in (b["messages"][0].get("content") or "")
        ]

    def client(self) -> lm.Client:
        return lm.client("openai:gpt-4o-mini", api_key=KEY, transport=self.transport, cache=False)


def ask(conv: Conversation, client: lm.Client, n: int) -> None:
    for i in range(n):
        conv.chat(f"question {i}: " + "q" * 60, client=client)


def test_the_oldest_half_is_summarised_once_the_history_no_longer_fits() -> None:
    backend = Backend()
    conv = Conversation("s", system="Be terse.", max_tokens=300, truncation="summarize")
    ask(conv, backend.client(), 16)
    backend.transport.assert_clean()
    assert backend.summaries >= 1 and conv.summary.text.startswith("summary number")
    assert 0 < conv.summary.covers < 16 and len(conv) == 16, "every verbatim turn is kept"
    last = backend.chats[-1]["messages"]
    assert last[0] == {"role": "system", "content": "Be terse."}, "the system message stays"
    assert last[1]["role"] == "system" and conv.summary.text in last[1]["content"]
    sent_questions = [m["content"] for m in last if m["role"] == "user"]
    assert all(not q.startswith("question 0:") for q in sent_questions[:-1]), (
        "summarised turns are not sent again"
    )


def test_summary_calls_count_in_the_conversations_usage() -> None:
    backend = Backend()
    conv = Conversation("s", max_tokens=300, truncation="summarize")
    ask(conv, backend.client(), 16)
    used = conv.usage
    assert used.summary_calls == backend.summaries >= 1
    assert used.calls == 16 + backend.summaries
    assert used.input_tokens == sum(t.usage.input_tokens for t in conv.turns) + sum(
        c.usage.input_tokens for c in conv.summary.calls
    )


def test_200_summarised_turns_never_send_a_request_over_the_budget() -> None:
    backend = Backend()
    conv = Conversation("long", system="You are terse.", max_tokens=600, truncation="summarize")
    ask(conv, backend.client(), 200)
    backend.transport.assert_clean()
    assert len(conv) == 200 and backend.summaries > 1
    for i, body in enumerate(backend.chats):
        sent = [Message(m["role"], m["content"]) for m in body["messages"]]
        assert sum(message_tokens(m, "gpt-4o-mini") for m in sent) <= 600, f"request {i}"
        assert sent[-1].text.startswith(f"question {i}:")
        roles = [m.role for m in sent if m.role != "system"][:-1]
        assert roles == ["user", "assistant"] * (len(roles) // 2), "no turn is split"


def test_max_history_with_summarize_folds_turns_instead_of_dropping_them() -> None:
    backend = Backend()
    conv = Conversation("s", max_history=4, truncation="summarize")
    ask(conv, backend.client(), 6)
    assert backend.summaries >= 1
    last = backend.chats[-1]["messages"]
    assert last[0]["role"] == "system" and "summary number" in last[0]["content"]
    assert len([m for m in last if m["role"] == "user"]) <= 5


def test_a_failing_summary_model_is_said_once_and_the_conversation_goes_on() -> None:
    backend = Backend(fail_summaries=True)
    conv = Conversation("s", max_tokens=300, truncation="summarize")
    client = backend.client()
    client.retry.max_attempts = 1
    with pytest.warns(UserWarning, match="the summary could not be written") as said:
        ask(conv, client, 16)
    assert len(said) == 1, "said once, not on every turn"
    assert len(conv) == 16 and not conv.summary
    assert all(t.answer for t in conv.turns), "every question was answered"
    sent = [Message(m["role"], m["content"]) for m in backend.chats[-1]["messages"]]
    assert sum(message_tokens(m, "gpt-4o-mini") for m in sent) <= 300, "dropped oldest instead"


def test_summarize_folds_every_turn_and_returns_the_summary() -> None:
    backend = Backend()
    conv = Conversation("s", truncation="summarize")
    client = backend.client()
    ask(conv, client, 3)
    assert not conv.summary, "nothing is summarised while everything fits"
    got = conv.summarize(client=client)
    assert got == conv.summary.text == "summary number 1" and conv.summary.covers == 3
    conv.chat("and now?", client=client)
    last = backend.chats[-1]["messages"]
    assert [m["role"] for m in last] == ["system", "user"], "the summary stands in for all three"
    assert conv.summarize(client=client) == "summary number 2", "only the new turn is folded"
    assert conv.summary.covers == 4


def test_summarize_with_another_strategy_is_there_to_read_and_changes_nothing_sent() -> None:
    backend = Backend()
    conv = Conversation("s")
    client = backend.client()
    ask(conv, client, 2)
    assert conv.summarize(client=client) == "summary number 1"
    assert [m.role for m in conv.messages("next")] == ["user", "assistant"] * 2 + ["user"]


def test_summarize_with_nothing_to_fold_sends_nothing() -> None:
    backend = Backend()
    assert Conversation("empty").summarize(client=backend.client()) == ""
    assert backend.transport.bodies == []


def test_an_unknown_summary_model_is_said_once_without_stopping_the_conversation() -> None:
    backend = Backend()
    conv = Conversation("s", max_tokens=300, truncation="summarize", summary_model="nosuch:model")
    with pytest.warns(UserWarning, match="nosuch"):
        ask(conv, backend.client(), 16)
    assert len(conv) == 16 and backend.summaries == 0


@pytest.mark.model
def test_the_local_model_writes_a_summary_that_the_next_request_carries() -> None:
    backend = Backend()
    conv = Conversation("trip", max_history=2, truncation="summarize", summary_model="local")
    client = backend.client()
    for question in (
        "My name is Ada and I am planning a trip to Lisbon in May.",
        "I want to see the tram 28 and eat pastel de nata.",
        "My budget is 800 euros for the whole week.",
        "What should I pack?",
    ):
        conv.chat(question, client=client)
    assert conv.summary.covers >= 1 and len(conv.summary.text.split()) >= 5
    assert conv.summary.calls[0].model.startswith("local:")
    last = backend.chats[-1]["messages"]
    carried = [m["content"] for m in last if m["role"] == "system"]
    assert carried and conv.summary.text in carried[0]
    assert conv.usage.summary_calls >= 1
