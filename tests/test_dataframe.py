"""df.llm / Series.llm end to end: the real client stack (key pool, retries, the disk cache)
against an OpenAI-compatible backend with latency and faults. Every request body is
validated against OpenAI's published spec (SpecTransport), including media parts and
structured-output schemas."""

from __future__ import annotations

import _thread
import asyncio
import hashlib
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx2
import pandas as pd
import pytest
from pydantic import BaseModel

import llm_magics as lm
from llm_magics._http import RetryPolicy
from tests.support.specs import SpecTransport, requires_specs

pytestmark = requires_specs

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
            delay = self.latency + self.jitter * _unit(text)
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


def _unit(text: str) -> float:
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


@pytest.fixture
def backend() -> Backend:
    return Backend()


def client_for(backend: Backend, *, max_retries: int = 4, **options: Any) -> lm.Client:
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


# --- order, index, dedup, cache --------------------------------------------------------------


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
    finished = sorted(range(40), key=lambda i: _unit(f"Rate review number {i} ({i})"))
    assert finished != list(range(40))  # the jitter really reordered completions


def test_identical_prompts_are_sent_once_per_call(backend: Backend) -> None:
    frame = pd.DataFrame({"city": ["Paris", "Rome", "Paris", "Oslo", "Rome", "Paris"] * 5})
    out = frame.llm.map("Country of {city}?", model=client_for(backend), progress=False)
    assert backend.count == 3
    assert sorted(backend.prompts) == ["Country of Oslo?", "Country of Paris?", "Country of Rome?"]
    assert out["llm"].tolist() == [answer_for(f"Country of {c}?") for c in frame.city]


def test_a_rerun_is_served_from_the_cache_and_sends_nothing(backend: Backend) -> None:
    frame = reviews(12)
    client = client_for(backend)
    first = frame.llm.map("Summarise {review}", model=client, progress=False)
    assert backend.count == 12
    second = frame.llm.map("Summarise {review}", model=client, progress=False)
    assert backend.count == 12
    pd.testing.assert_frame_equal(first, second)
    frame.llm.map("Summarise {review}", model=client, progress=False, cache=False)
    assert backend.count == 24


def test_concurrency_bounds_the_requests_in_flight(backend: Backend) -> None:
    backend.latency = 0.03
    frame = reviews(30)
    frame.llm.map("{review}", model=client_for(backend), concurrency=5, progress=False)
    assert backend.peak == 5


def test_an_interrupt_mid_run_loses_no_finished_row_and_a_rerun_sends_only_the_rest(
    backend: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    backend.latency = 0.05
    frame = reviews(60)
    client = client_for(backend)

    def interrupt_when_busy() -> None:
        deadline = time.monotonic() + 10
        while backend.count < 20 and time.monotonic() < deadline:
            time.sleep(0.002)
        _thread.interrupt_main()  # what a kernel interrupt does to the running cell

    threading.Thread(target=interrupt_when_busy, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        frame.llm.map("Rate {review}", model=client, concurrency=4, progress="text")
    assert "interrupted at" in capsys.readouterr().err
    sent_before = backend.count
    finished = lm.cache_stats().writes
    assert 0 < finished < 60 and sent_before < 60
    out = frame.llm.map("Rate {review}", model=client, concurrency=4, progress=False)
    assert backend.count - sent_before == 60 - finished  # only the missing rows went out
    assert out["llm"].tolist() == [answer_for(f"Rate {r}") for r in frame.review]
    assert out["llm_error"].isna().all()


# --- faults ----------------------------------------------------------------------------------


def test_a_server_failing_a_fifth_of_requests_still_answers_every_row(backend: Backend) -> None:
    backend.error_rate = 0.2
    frame = reviews(100)
    out = frame.llm.map("Rate {review}", model=client_for(backend), progress=False)
    assert out["llm_error"].isna().all(), out["llm_error"].dropna().head()
    assert out["llm"].tolist() == [answer_for(f"Rate {r}") for r in frame.review]
    assert backend.count > 110  # failures really happened and were retried


def test_a_429_with_retry_after_holds_every_request_back_until_it_has_passed(
    backend: Backend,
) -> None:
    start = time.monotonic()
    backend.rate_limit_window = (start, start + 0.6)
    frame = reviews(16)
    out = frame.llm.map("Rate {review}", model=client_for(backend), concurrency=8, progress=False)
    assert out["llm_error"].isna().all()
    assert backend.limited, "the backend never rate-limited"
    first_429 = backend.limited[0]
    early = [
        t for t in backend.arrivals if first_429 < t < start + 0.6 and t not in backend.limited
    ]
    assert not early
    # Requests sent after the client learned of the limit all arrived after Retry-After.
    late = [t for t in backend.arrivals if t > backend.limited[-1]]
    assert late and min(late) >= start + 0.6 - 0.01


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


def test_a_run_where_nothing_succeeds_stops_early_with_the_error(backend: Backend) -> None:
    backend.fail_when = "review"
    with pytest.raises(lm.ProviderError):
        reviews(200).llm.map(
            "Rate {review}", model=client_for(backend, max_retries=0), progress=False
        )
    assert backend.count < 40


def test_a_rejected_key_fails_the_call_at_once(backend: Backend) -> None:
    backend.fail_when, backend.status = "review", 401
    with pytest.raises(lm.AuthenticationError):
        reviews(50).llm.map("Rate {review}", model=client_for(backend), progress=False)
    assert backend.count <= 16  # the first wave, not fifty


# --- inputs ----------------------------------------------------------------------------------


def test_an_unknown_column_is_named_before_anything_is_sent(backend: Backend) -> None:
    with pytest.raises(lm.ConfigError) as info:
        reviews(3).llm.map("Rate {reveiw}", model=client_for(backend))
    assert "no column named 'reveiw'" in str(info.value)
    assert "review, stars" in str(info.value)
    assert backend.count == 0


def test_an_empty_frame_gives_an_empty_result_without_a_request(backend: Backend) -> None:
    frame = reviews(0)
    out = frame.llm.map("Rate {review}", model=client_for(backend))
    assert len(out) == 0 and list(out.columns) == ["review", "stars", "llm", "llm_error"]
    assert backend.count == 0


def test_rows_with_missing_input_are_skipped_and_say_so(backend: Backend) -> None:
    frame = pd.DataFrame({"review": ["good", None, float("nan"), "bad"], "n": [1, 2, 3, None]})
    out = frame.llm.map("{review} {n}", model=client_for(backend), progress=False)
    assert backend.prompts == ["good 1.0"]
    assert out["llm"].tolist() == [answer_for("good 1.0"), None, None, None]
    assert out["llm_error"].tolist() == [
        None,
        "skipped: missing input 'review'",
        "skipped: missing input 'review'",
        "skipped: missing input 'n'",
    ]


def test_braces_in_values_reach_the_model_verbatim(backend: Backend) -> None:
    values = ['{"a": 1}', "{review}", "{{x}}", "} {", "{0!r:>9}"]
    frame = pd.DataFrame({"code": values})
    out = frame.llm.map("Explain: {code}", model=client_for(backend), progress=False)
    assert backend.prompts == [f"Explain: {v}" for v in values]
    assert out["llm"].tolist() == [answer_for(f"Explain: {v}") for v in values]


def test_series_map_fills_value_and_appends_it_to_a_bare_instruction(backend: Backend) -> None:
    s = pd.Series(["hello", "bye"], index=[5, 3], name="word")
    out = s.llm.map("Translate to French", model=client_for(backend), progress=False)
    assert backend.prompts == ["Translate to French\n\nhello", "Translate to French\n\nbye"]
    assert list(out.columns) == ["word", "llm", "llm_error"] and list(out.index) == [5, 3]
    out = s.llm.map("{value} / {word}", model=client_for(backend), progress=False, out="x")
    assert out["x"].tolist() == [answer_for("hello / hello"), answer_for("bye / bye")]


# --- structured outputs ----------------------------------------------------------------------


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


# --- classify, filter, estimate --------------------------------------------------------------


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
    with pytest.warns(UserWarning, match="kept 1 row"):
        out = frame.llm.filter(
            "Is this about food: {topic}?", model=client_for(backend), constrain=False,
            progress=False,
        )  # fmt: skip
    assert list(out.index) == [10, 30, 50]
    assert out["llm_error"].tolist()[:2] == [None, None]
    assert "not a yes or a no" in out["llm_error"].iloc[2]
    dropped = frame.llm.filter(
        "Is this about food: {topic}?", model=client_for(backend), constrain=False,
        progress=False, undecided="drop",
    )  # fmt: skip
    assert list(dropped.index) == [10, 30] and list(dropped.columns) == ["topic"]


@pytest.fixture
def priced() -> Any:
    from llm_magics.pricing import reset_profiles

    lm.set_price("srv:gpt-4o-mini", input=1.0, output=2.0)
    yield
    reset_profiles()


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


# --- media -----------------------------------------------------------------------------------


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


# --- progress --------------------------------------------------------------------------------


def test_in_a_notebook_the_run_drives_the_progress_widget(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import types

    from llm_magics.widgets import ProgressWidget

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


def test_progress_false_prints_nothing(
    backend: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    reviews(3).llm.map("{review}", model=client_for(backend), progress=False)
    assert capsys.readouterr().err == ""
    reviews(3).llm.map("{review}!", model=client_for(backend), progress="text")
    assert "3/3 rows" in capsys.readouterr().err
