"""Conversation.stream: text arrives piece by piece, the turn is recorded when the stream ends,
and an answer cut short (break, Ctrl-C, a dropped connection) is kept with what arrived."""

from __future__ import annotations

import pytest

import llm_magics as lm
from llm_magics._chat.memory import Conversation
from tests.magics_helpers import FakeOpenAI


def client_of(fake: FakeOpenAI) -> lm.Client:
    return lm.client(
        "openai:gpt-4o-mini", api_key="sk-test-0123456789abcdef", transport=fake.transport,
        cache=False,
    )  # fmt: skip


def test_a_streamed_answer_arrives_in_pieces_and_is_recorded_at_the_end() -> None:
    fake = FakeOpenAI(reply="one two three four")
    conv = Conversation("s", system="S")
    stream = conv.stream("count", client=client_of(fake))
    pieces = list(stream)
    assert len(pieces) == 4 and "".join(pieces) == "one two three four"
    assert stream.response is not None and stream.response.text == "one two three four"
    assert len(conv) == 1 and conv.turns[0].answer == "one two three four"
    assert conv.turns[0].model == "openai:gpt-4o-mini"
    conv.stream("again", client=client_of(fake)).__iter__().__next__()
    fake.transport.assert_clean()
    assert [m["role"] for m in fake.bodies[0]["messages"]] == ["system", "user"]


def test_a_stream_left_early_keeps_what_arrived_as_an_interrupted_turn() -> None:
    fake = FakeOpenAI(reply="alpha beta gamma delta epsilon")
    conv = Conversation("s")
    with conv.stream("go", client=client_of(fake)) as stream:
        for i, _ in enumerate(stream):
            if i == 1:
                break
    assert len(conv) == 1
    turn = conv.turns[0]
    assert turn.finish_reason == "interrupted" and turn.answer == "alpha beta "
    conv.chat("next", client=client_of(fake))
    sent = fake.bodies[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"], "goes on from what arrived"


def test_a_dropped_stream_raises_and_keeps_the_partial_answer() -> None:
    fake = FakeOpenAI(reply="alpha beta gamma delta epsilon")
    fake.cut_after = 2
    conv = Conversation("s")
    with pytest.raises(lm.StreamInterruptedError):
        for _ in conv.stream("go", client=client_of(fake)):
            pass
    assert len(conv) == 1 and conv.turns[0].finish_reason == "interrupted"
    assert conv.turns[0].answer and "alpha" in conv.turns[0].answer


def test_a_stream_with_no_prompt_answers_the_waiting_question() -> None:
    fake = FakeOpenAI()
    conv = Conversation("s")
    conv.add_user("hello there")
    assert "".join(conv.stream(client=client_of(fake))) == "echo: hello there"
    assert len(conv) == 1 and conv.turns[0].answer == "echo: hello there"


@pytest.mark.model
def test_a_stopped_answer_records_its_latency_and_a_free_model_costs_nothing() -> None:
    local = lm.client("local", cache=False)
    conv = Conversation("s")
    with conv.stream("Count to twenty.", client=local, max_tokens=40) as stream:
        next(iter(stream))
    turn = conv.turns[0]
    assert turn.finish_reason == "interrupted" and turn.latency is not None
    assert turn.cost == 0.0 and conv.usage.unpriced == 0
