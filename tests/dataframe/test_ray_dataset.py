"""``lm.ray.map`` over a real ``ray.data.Dataset`` on a real two-CPU cluster: rows rendered on
the workers, each unique prompt sent once across the cluster, per-row errors and skipped
rows as data, schema fields as columns, usage in the driver's ``lm.usage()``, a rerun that
sends only what the cache lacks, and clear errors for what it does not take."""

from __future__ import annotations

import json
import time
from typing import Any

import pandas as pd
import pytest
import ray
from pydantic import BaseModel

import llm_magics as lm
from llm_magics._batch import ray_engine
from llm_magics.dataframe import ray_dataset
from tests.support.ray_cluster import RayCluster
from tests.support.server import FakeOpenAIServer, answer_for

KEY = "sk-ray-dataset-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def cluster(ray_driver: RayCluster, monkeypatch: pytest.MonkeyPatch) -> RayCluster:
    monkeypatch.setattr(ray_engine.settings, "actors", 2)
    return ray_driver


def rows(n: int, unique: int) -> list[dict[str, Any]]:
    return [{"id": i, "text": f"item {i % unique}" if i % 17 else None} for i in range(n)]


def by_id(dataset: Any) -> pd.DataFrame:
    return dataset.to_pandas().sort_values("id").reset_index(drop=True)


def test_every_row_is_answered_and_each_unique_prompt_is_sent_once_across_the_cluster() -> None:
    data = rows(300, 40)
    with FakeOpenAIServer(latency=0.02) as srv:
        lm.register("fake", srv.base_url, api_key=KEY)
        lm.reset_usage()
        out = lm.ray.map(ray.data.from_items(data), "Echo {text}", model="fake:m",
                         progress=False, batch_size=20)  # fmt: skip
        sent = srv.request_count
    frame = by_id(out)
    assert len(frame) == 300 and list(frame["id"]) == list(range(300))
    unique = {r["text"] for r in data if r["text"] is not None}
    assert sent == len(unique)  # dedup across 15 batches on 2 actors
    for row in frame.itertuples():
        # Missing values come back as pandas' NA after the trip through Arrow blocks.
        if pd.isna(row.text):
            assert pd.isna(row.llm) and row.llm_error == "skipped: missing input 'text'"
        else:
            assert row.llm == answer_for(
                {"messages": [{"role": "user", "content": f"Echo {row.text}"}]}
            )
            assert pd.isna(row.llm_error)
    assert lm.usage().session.calls == len(unique)
    # A rerun finds everything in the cache (the workers share this machine's disk cache).
    with FakeOpenAIServer() as srv2:
        lm.register("fake", srv2.base_url, api_key=KEY)
        lm.ray.map(ray.data.from_items(data), "Echo {text}", model="fake:m", progress=False)
        # Another base URL is another cache key: the rerun here asks again, once per prompt.
        assert srv2.request_count == len(unique)
        lm.ray.map(ray.data.from_items(data), "Echo {text}", model="fake:m", progress=False)
        assert srv2.request_count == len(unique)


class Item(BaseModel):  # defined in the test module, not importable on a worker by value
    name: str
    size: int


def test_a_schema_gives_one_column_per_field_and_failures_stay_rows() -> None:
    def answer(body: dict[str, Any]) -> str:
        text = body["messages"][-1]["content"]
        if text.endswith("3"):
            raise ValueError("always fails")
        return json.dumps({"name": text[-6:], "size": len(text)})

    data = [{"id": i, "text": f"thing {i % 10}"} for i in range(50)]
    with FakeOpenAIServer(answer=answer) as srv:
        lm.register("fake", srv.base_url, api_key=KEY)
        c = lm.client("fake:m", max_retries=0)
        out = by_id(lm.ray.map(ray.data.from_items(data), "Describe {text}", model=c,
                               schema=Item, progress=False))  # fmt: skip
    failed = out["text"].str.endswith("3")
    assert (
        out.loc[~failed, "name"].notna().all()
        and (out.loc[~failed, "size"] == len("Describe thing 0")).all()
    )
    assert out.loc[failed, "llm_error"].str.contains("500").all()
    assert out.loc[failed, "name"].isna().all()


def test_a_callable_template_defined_here_runs_on_the_workers() -> None:
    suffix = "please"

    def prompt(row: Any) -> str | None:
        return None if row["id"] == 3 else f"Say {row['text']} {suffix}"

    data = [{"id": i, "text": f"word{i}"} for i in range(12)]
    with FakeOpenAIServer() as srv:
        lm.register("fake", srv.base_url, api_key=KEY)
        out = by_id(lm.ray.map(ray.data.from_items(data), prompt, model="fake:m", progress=False))
    assert out.loc[0, "llm"] == answer_for(
        {"messages": [{"role": "user", "content": "Say word0 please"}]}
    )
    assert out.loc[3, "llm_error"] == "skipped: the template function returned None"


def test_an_lm_template_is_bound_to_the_dataset_columns_and_its_keywords() -> None:
    bodies: list[dict[str, Any]] = []

    def answer(body: dict[str, Any]) -> str:
        bodies.append(body)
        return answer_for(body)

    t = lm.Template(
        "translate", system="You translate into {lang}.", user="[{tone}] {text}",
        defaults={"tone": "plain"},
    )  # fmt: skip
    data = [{"id": i, "review": f"text {i % 4}"} for i in range(16)]
    with FakeOpenAIServer(answer=answer) as srv:
        lm.register("fake", srv.base_url, api_key=KEY)
        out = by_id(lm.ray.map(ray.data.from_items(data), t, model="fake:m", progress=False,
                               columns={"text": "review"}, lang="French"))  # fmt: skip
    assert len(bodies) == 4  # one per unique review
    for body in bodies:
        system, user = body["messages"]
        assert system == {"role": "system", "content": "You translate into French."}
        assert user["content"].startswith("[plain] text ")
    expected = {
        "messages": [
            {"role": "system", "content": "You translate into French."},
            {"role": "user", "content": "[plain] text 1"},
        ]
    }
    assert out.loc[1, "llm"] == answer_for(expected) and out["llm_error"].isna().all()


def test_template_mistakes_are_this_calls_errors_before_any_task_runs() -> None:
    dataset = ray.data.from_items([{"id": 1, "text": "a"}])
    with pytest.raises(lm.ConfigError, match="'txt'"):
        lm.ray.map(dataset, "Echo {txt}", model="local")
    with pytest.raises(lm.ConfigError, match="uses no column"):
        lm.ray.map(dataset, "Echo", model="local")
    t = lm.Template("t", user="{text} in {lang}")
    with pytest.raises(lm.ConfigError, match="lang"):
        lm.ray.map(dataset, t, model="local")
    with pytest.raises(lm.ConfigError, match="no column named 'body'"):
        lm.ray.map(dataset, t, model="local", columns={"text": "body"}, lang="en")
    with pytest.raises(lm.ConfigError, match=r"columns= maps the variables of an lm\.Template"):
        lm.ray.map(dataset, "Echo {text}", model="local", columns={"text": "text"})


def test_max_cost_stops_a_dataset_job_and_the_rows_not_sent_say_so() -> None:
    def long_answer(body: dict[str, Any]) -> str:
        return " ".join(["word"] * 400)

    data = [{"id": i, "text": f"item {i}"} for i in range(200)]
    with FakeOpenAIServer(answer=long_answer, latency=0.02) as srv:
        lm.register("fake", srv.base_url, api_key=KEY)
        lm.set_price("fake:m", input=1000.0, output=1000.0)  # USD per 1M tokens
        cap = 2.0  # an answer is 500 output tokens, $0.50: four answers' worth
        out = by_id(lm.ray.map(ray.data.from_items(data), "Echo {text}", model="fake:m",
                               progress=False, max_cost=cap, concurrency=4,
                               batch_size=10))  # fmt: skip
        sent = srv.request_count
        refused = out["llm_error"].fillna("").str.contains("max_cost= of .* is reached")
        answered = out["llm"].notna()
        assert len(out) == 200 and (answered | refused).all()
        assert refused.any() and answered.any()
        assert answered.sum() <= sent < 200
        time.sleep(1.0)  # answers of requests in flight at the stop land in the cache
        again = by_id(lm.ray.map(ray.data.from_items(data), "Echo {text}", model="fake:m",
                                 progress=False))  # fmt: skip
        assert again["llm"].notna().all()
        assert srv.request_count == 200  # the rerun paid only for what the first did not get


def test_a_one_block_pandas_dataset_is_split_so_every_actor_gets_rows() -> None:
    df = pd.DataFrame({"id": range(40), "text": [f"t{i}" for i in range(40)]})
    dataset = ray.data.from_pandas(df)
    assert dataset.num_blocks() == 1
    split = ray_dataset.spread(dataset, 2).materialize()
    assert split.num_blocks() >= 2 and by_id(split).equals(df)
    lazy = ray.data.range(10)  # not materialized: left as its source reads it
    assert ray_dataset.spread(lazy, 2) is lazy
    with FakeOpenAIServer() as srv:
        lm.register("fake", srv.base_url, api_key=KEY)
        out = by_id(lm.ray.map(dataset, "Echo {text}", model="fake:m", progress=False))
        assert srv.request_count == 40
    assert out["llm"].notna().all() and list(out["id"]) == list(range(40))


def test_what_lm_ray_map_does_not_take_is_said_plainly() -> None:
    with pytest.raises(lm.ConfigError, match=r"takes a ray\.data\.Dataset; got DataFrame"):
        lm.ray.map(pd.DataFrame({"a": [1]}), "{a}", model="local")
    with pytest.raises(lm.ConfigError, match="batch_size= must be a whole number"):
        lm.ray.map(ray.data.from_items([{"a": 1}]), "{a}", model="local", batch_size=0)
    assert "map(dataset, template" in repr(lm.ray)
