"""df.llm's requests on the wire and its outputs, through the real client stack against a
scriptable backend whose transport validates every request body against OpenAI's published
spec: structured-output schemas, label enums, image parts. Also per-prompt faults, completion
order, the concurrency bound and the progress widget, which need a backend that can vary
latency and failures per prompt."""

from __future__ import annotations

import json
from typing import Any, Literal

import pandas as pd
import pytest
from pydantic import BaseModel

import llm_magics as lm
from tests.dataframe_support import Backend, answer_for, client_for, reviews, unit


@pytest.fixture
def backend() -> Backend:
    return Backend()


def test_answers_keep_input_order_and_index_whatever_order_they_finish_in(
    backend: Backend,
) -> None:
    backend.latency, backend.jitter = 0.005, 0.05  # completion order differs from input order
    frame = reviews(40)
    before = frame.copy()
    out = frame.llm.map("Rate {review} ({stars})", model=client_for(backend), progress=False)
    assert out.index.equals(frame.index) and list(out.columns) == [
        "review", "stars", "llm", "llm_error"
    ]  # fmt: skip
    expected = [
        answer_for(f"Rate {r} ({s})") for r, s in zip(frame.review, frame.stars, strict=True)
    ]
    assert out["llm"].tolist() == expected
    assert out["llm_error"].isna().all()
    pd.testing.assert_frame_equal(frame, before)  # the input is not modified
    finished = sorted(range(40), key=lambda i: unit(f"Rate review number {i} ({i})"))
    assert finished != list(range(40))  # the jitter really reordered completions


def test_concurrency_bounds_the_requests_in_flight(backend: Backend) -> None:
    backend.latency = 0.03
    frame = reviews(30)
    frame.llm.map("{review}", model=client_for(backend), concurrency=5, progress=False)
    assert backend.peak == 5


def test_rows_that_still_fail_get_the_error_text_and_the_others_their_answers(
    backend: Backend,
) -> None:
    backend.fail_when = "number 3"
    frame = reviews(8)
    out = frame.llm.map("Rate {review}", model=client_for(backend, max_retries=1), progress=False)
    bad = frame.review.str.contains("number 3")
    assert out.loc[bad, "llm"].isna().all()
    (error,) = out.loc[bad, "llm_error"]
    assert error.startswith("ProviderError:") and "500" in error
    assert out.loc[~bad, "llm_error"].isna().all() and out.loc[~bad, "llm"].notna().all()
    # Two attempts by the client, then one more pair in the final sweep.
    assert backend.prompts.count("Rate review number 3") == 4


def test_errors_raise_raises_the_first_failure(backend: Backend) -> None:
    backend.fail_when = "number 3"
    with pytest.raises(lm.ProviderError) as info:
        reviews(8).llm.map(
            "Rate {review}", model=client_for(backend, max_retries=0), progress=False,
            errors="raise",
        )  # fmt: skip
    assert info.value.status_code == 500


class Review(BaseModel):
    sentiment: Literal["positive", "negative"]
    stars: int
    score: float
    recommends: bool
    summary: str


def review_json(prompt: str, body: dict[str, Any]) -> str:
    assert body["response_format"]["type"] == "json_schema"
    n = int(prompt.rsplit(" ", 1)[-1])
    return json.dumps(
        {
            "sentiment": "positive" if n % 2 else "negative",
            "stars": n,
            "score": n / 10,
            "recommends": n > 2,
            "summary": f"about {n}",
        }
    )


def test_a_schema_fills_one_typed_column_per_field(backend: Backend) -> None:
    backend.answer = review_json
    frame = pd.DataFrame({"text": [f"review {i}" for i in range(5)]})
    out = frame.llm.map("{text}", schema=Review, model=client_for(backend), progress=False)
    assert list(out.columns) == [
        "text", "sentiment", "stars", "score", "recommends", "summary", "llm_error"
    ]  # fmt: skip
    assert str(out["stars"].dtype) == "Int64" and out["stars"].tolist() == [0, 1, 2, 3, 4]
    assert out["score"].dtype == "float64" and out["score"].tolist()[1] == 0.1
    assert str(out["recommends"].dtype) == "boolean"
    assert isinstance(out["sentiment"].dtype, pd.CategoricalDtype)
    assert list(out["sentiment"].cat.categories) == ["positive", "negative"]
    assert out["summary"].tolist()[4] == "about 4"
    schema = backend.bodies[0]["response_format"]["json_schema"]["schema"]
    assert set(schema["properties"]) == {"sentiment", "stars", "score", "recommends", "summary"}


def test_extract_names_columns_by_prefix_or_mapping_and_reports_bad_json(
    backend: Backend,
) -> None:
    def answer(prompt: str, body: dict[str, Any]) -> str:
        return "not json at all" if prompt.endswith("3") else review_json(prompt, body)

    backend.answer = answer
    frame = pd.DataFrame({"text": [f"review {i}" for i in range(4)]})
    client = client_for(backend)
    out = frame.llm.extract("{text}", Review, out="r", model=client, progress=False)
    assert {"r_stars", "r_sentiment", "r_error"} <= set(out.columns)
    assert out["r_stars"].tolist()[:3] == [0, 1, 2] and pd.isna(out["r_stars"].iloc[3])
    assert out["r_error"].iloc[3].startswith("OutputParseError:")
    schema = {
        "type": "object",
        "properties": {"stars": {"type": "integer"}, "summary": {"type": "string"}},
        "required": ["stars", "summary"],
    }
    out = frame.iloc[:2].llm.extract(
        "{text}", schema, out={"stars": "n_stars"}, model=client, progress=False
    )
    assert list(out.columns) == ["text", "n_stars", "summary", "llm_error"]
    assert str(out["n_stars"].dtype) == "Int64"


def sentiment(prompt: str, body: dict[str, Any]) -> str:
    label = "negative" if "awful" in prompt else "positive"
    if "response_format" in body:
        enum = body["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"]
        assert enum == ["positive", "negative"]
        return json.dumps({"label": label})
    return {"positive": "Positive.", "negative": "**NEGATIVE**"}[label]


@pytest.mark.parametrize("constrain", [None, False])
def test_classify_gives_every_row_a_label_from_the_set(backend: Backend, constrain: Any) -> None:
    backend.answer = sentiment
    frame = pd.DataFrame({"review": ["awful food", "lovely", "awful service", "great"]})
    out = frame.llm.classify(
        "Review: {review}", ["positive", "negative"], model=client_for(backend),
        constrain=constrain, progress=False,
    )  # fmt: skip
    assert out["label"].tolist() == ["negative", "positive", "negative", "positive"]
    assert list(out["label"].cat.categories) == ["positive", "negative"]
    assert out["label_error"].isna().all()
    assert ("response_format" in backend.bodies[0]) is (constrain is None)
    assert "positive, negative" in backend.bodies[0]["messages"][0]["content"]


def test_a_classify_answer_outside_the_labels_is_an_explicit_error(backend: Backend) -> None:
    backend.answer = lambda prompt, body: "neutral" if "meh" in prompt else "positive"
    frame = pd.DataFrame({"review": ["meh", "fine"]})
    out = frame.llm.classify(
        "{review}", ["positive", "negative"], model=client_for(backend), constrain=False,
        progress=False,
    )  # fmt: skip
    assert pd.isna(out["label"].iloc[0]) and out["label"].iloc[1] == "positive"
    assert "none of the labels" in out["label_error"].iloc[0]


def test_filter_keeps_yes_rows_and_keeps_undecided_rows_flagged(backend: Backend) -> None:
    replies = {"pizza": "Yes.", "cars": "no", "pasta": "TRUE", "bikes": "False.", "odd": "maybe"}
    backend.answer = lambda prompt, body: replies[prompt.split()[-1].rstrip("?")]
    frame = pd.DataFrame({"topic": list(replies)}, index=[10, 20, 30, 40, 50])
    with pytest.warns(UserWarning, match="kept 1 row") as caught:
        out = frame.llm.filter(
            "Is this about food: {topic}?", model=client_for(backend), constrain=False,
            progress=False,
        )  # fmt: skip
    assert caught[0].filename == __file__, "the warning points at the caller's line"
    with pytest.warns(UserWarning, match="kept 1 row") as caught:
        kept = frame["topic"].llm.filter(
            "Is this about food: {topic}?", model=client_for(backend), constrain=False,
            progress=False,
        )  # fmt: skip
    assert caught[0].filename == __file__ and list(kept.index) == [10, 30, 50]
    assert list(out.index) == [10, 30, 50]
    assert out["llm_error"].tolist()[:2] == [None, None]
    assert "not a yes or a no" in out["llm_error"].iloc[2]
    dropped = frame.llm.filter(
        "Is this about food: {topic}?", model=client_for(backend), constrain=False,
        progress=False, undecided="drop",
    )  # fmt: skip
    assert list(dropped.index) == [10, 30] and list(dropped.columns) == ["topic"]


@pytest.fixture
def priced() -> None:
    lm.set_price("srv:gpt-4o-mini", input=1.0, output=2.0)  # the session forgets it after


def test_estimate_counts_calls_tokens_and_dollars_without_sending(
    backend: Backend, priced: None
) -> None:
    frame = pd.DataFrame({"city": ["Paris", "Rome", "Paris", None]})
    client = client_for(backend)
    est = frame.llm.estimate("Country of {city}?", model=client, max_tokens=10)
    assert backend.count == 0
    assert (est.rows, est.skipped, est.unique_prompts, est.cached, est.calls) == (4, 1, 2, 0, 2)
    assert est.input_tokens > 0 and est.output_tokens == 20
    assert est.usd == pytest.approx((est.input_tokens * 1.0 + 20 * 2.0) / 1e6)
    assert "calls to send" in str(est)
    frame.llm.map("Country of {city}?", model=client, max_tokens=10, progress=False)
    again = frame.llm.estimate("Country of {city}?", model=client, max_tokens=10)
    assert (again.cached, again.calls, again.usd) == (2, 0, 0.0)
    assert frame.llm.estimate("Country of {city}?", model="openai:gpt-4o-mini").usd is not None


def png(color: tuple[int, int, int]) -> bytes:
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.new("RGB", (4, 4), color).save(buf, format="PNG")
    return buf.getvalue()


def test_image_columns_become_image_parts_of_the_request(backend: Backend, tmp_path) -> None:
    paths = []
    for i, color in enumerate([(255, 0, 0), (0, 0, 255)]):
        path = tmp_path / f"{i}.png"
        path.write_bytes(png(color))
        paths.append(str(path))
    frame = pd.DataFrame({"photo": paths, "q": ["What colour?", "What colour?"]})
    client = client_for(backend)
    out = frame.llm.map("{q} {photo:image}", model=client, progress=False)
    assert out["llm_error"].isna().all() and backend.count == 2
    content = backend.bodies[0]["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What colour? "}
    assert content[1]["type"] == "image_url"
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    out = frame.llm.map("{q}", images=["photo"], model=client, progress=False, cache=False)
    content = backend.bodies[-1]["messages"][-1]["content"]
    assert [p["type"] for p in content] == ["text", "image_url"]
    assert out["llm_error"].isna().all()


def test_a_missing_image_file_fails_only_its_row(backend: Backend, tmp_path) -> None:
    good = tmp_path / "ok.png"
    good.write_bytes(png((0, 255, 0)))
    frame = pd.DataFrame({"photo": [str(good), str(tmp_path / "gone.png")]})
    out = frame.llm.map("Describe", images=["photo"], model=client_for(backend), progress=False)
    assert out["llm_error"].iloc[0] is None
    assert "gone.png" in out["llm_error"].iloc[1]
    assert backend.count == 1


def test_in_a_notebook_the_run_drives_the_progress_widget(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import types

    from llm_magics.notebook.widgets import ProgressWidget

    created: list[ProgressWidget] = []
    real_init = ProgressWidget.__init__

    def init(self: ProgressWidget, label: str = "llm", display: Any = None) -> None:
        real_init(self, label, display=lambda w: None)
        created.append(self)

    monkeypatch.setattr(ProgressWidget, "__init__", init)
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: types.SimpleNamespace(kernel=object())  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake)
    frame = pd.DataFrame({"t": ["a", "b", "a", None]})
    frame.llm.map("{t}", model=client_for(backend))
    (widget,) = created
    assert (widget.bar.value, widget.bar.max, widget.bar.bar_style) == (4, 4, "success")
    assert "4/4 rows" in widget.text.value and "1 skipped" in widget.text.value
    assert "34 tokens" in widget.text.value  # two requests of 12 + 5 tokens


def wav(seconds: float = 0.2, rate: int = 8000) -> bytes:
    import io
    import math
    import struct
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        samples = (
            int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(seconds * rate))
        )
        out.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return buf.getvalue()


def test_audio_columns_become_input_audio_parts_of_the_request(backend: Backend, tmp_path) -> None:
    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav())
    frame = pd.DataFrame({"clip": [str(clip), wav(0.3)], "n": [1, 2]})
    client = lm.client(
        "openai:gpt-4o-audio-preview",
        api_key="sk-test-dataframe-0123456789",
        base_url="http://llm.test/v1",
        transport=backend.transport(),
    )
    out = frame.llm.map("Transcribe clip {n}: {clip:audio}", model=client, progress=False)
    assert out["llm_error"].isna().all() and backend.count == 2
    parts = backend.bodies[0]["messages"][-1]["content"]
    assert parts[0] == {"type": "text", "text": "Transcribe clip 1: "}
    assert parts[1]["type"] == "input_audio" and parts[1]["input_audio"]["format"] == "wav"
    out = frame.llm.map("Transcribe", audio=["clip"], model=client, progress=False, cache=False)
    assert [p["type"] for p in backend.bodies[-1]["messages"][-1]["content"]] == [
        "text",
        "input_audio",
    ]
