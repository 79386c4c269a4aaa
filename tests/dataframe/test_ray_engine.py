"""``df.llm.map(..., engine="ray")`` on a real two-CPU Ray cluster against the real fault
server: the same values as the local engine with the index restored, each unique prompt
sent once, one rate budget for all actors (no request before a Retry-After, limits never
exceeded), per-row errors as data, usage totals in the driver, live progress, keys never in
Ray's logs or arguments, a rerun after a killed job sending only what is missing, and a
Redis cache shared with another kernel."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import BaseModel

import llm_magics as lm
from llm_magics._batch import ray_engine
from llm_magics._batch.ray_spec import ClientSpec, WorkerSecrets
from tests.support.ray_cluster import RayCluster
from tests.support.server import FakeOpenAIServer, answer_for

KEY = "sk-ray-engine-key-0123456789abcdef"
KEYS = ("sk-ray-pool-key-one-0123456789", "sk-ray-pool-key-two-9876543210")


@pytest.fixture(autouse=True)
def cluster(ray_driver: RayCluster, monkeypatch: pytest.MonkeyPatch) -> RayCluster:
    monkeypatch.setattr(ray_engine.settings, "actors", 2)
    return ray_driver


def frame(n: int, unique: int) -> pd.DataFrame:
    # A shuffled, non-default index: results must come back in the frame's own order.
    index = [f"row-{(i * 7) % n:04d}" for i in range(n)]
    return pd.DataFrame({"text": [f"item {i % unique}" for i in range(n)]}, index=index)


def register(srv: FakeOpenAIServer) -> None:
    lm.register("fake", srv.base_url, api_key=KEY)


def test_ray_gives_the_local_engines_values_row_for_row_and_sends_each_prompt_once() -> None:
    df = frame(300, 120)
    with FakeOpenAIServer(latency=0.01) as srv:
        register(srv)
        on_ray = df.llm.map("Echo {text}", model="fake:m", engine="ray", progress=False)
        assert srv.request_count == 120  # dedup before fan-out: unique prompts only
        local = df.llm.map("Echo {text}", model="fake:m", cache=False, progress=False)
    pd.testing.assert_frame_equal(on_ray, local)
    assert list(on_ray.index) == list(df.index)
    assert on_ray["llm"].iloc[0] == answer_for(
        {"messages": [{"role": "user", "content": f"Echo {df['text'].iloc[0]}"}]}
    )
    assert on_ray["llm_error"].isna().all()


class Review(BaseModel):  # defined in a test module, as in a notebook: not on the workers' path
    item: str
    length: int


def test_a_schema_classify_and_filter_on_ray_equal_the_local_engine() -> None:
    df = frame(40, 20)

    def answer(body: dict[str, Any]) -> str:
        text = body["messages"][-1]["content"]
        if "response_format" in body:
            props = body["response_format"]["json_schema"]["schema"]["properties"]
            if "label" in props:
                return (
                    '{"label": "even"}'
                    if text.endswith(("0", "2", "4", "6", "8"))
                    else '{"label": "odd"}'
                )
            if "answer" in props:
                return '{"answer": "yes"}' if "1" in text else '{"answer": "no"}'
            return json.dumps({"item": text[-8:], "length": str(len(text))})
        return answer_for(body)

    with FakeOpenAIServer(answer=answer) as srv:
        register(srv)
        for method, args in (
            ("extract", ("Describe {text}", Review)),
            ("classify", ("Parity of {text}", ["even", "odd"])),
            ("filter", ("Does {text} have a one?",)),
        ):
            run = getattr(df.llm, method)
            on_ray = run(*args, model="fake:m", engine="ray", cache=False, progress=False)
            local = run(*args, model="fake:m", cache=False, progress=False)
            pd.testing.assert_frame_equal(on_ray, local, obj=method)
    assert on_ray.shape[0] < df.shape[0]  # the filter kept some rows, not all
    # "length" came back as a string and was coerced by the pydantic model, on the driver.
    extracted = df.llm.extract(
        "Describe {text}", Review, model="fake:m", engine="ray", progress=False
    )
    assert extracted["length"].dtype == "Int64"


SCALE = 20.0  # the fault server's and the coordinator's clock: a minute lasts 3 s


def map_on_limited_keys(
    rows: int, rpm: int, monkeypatch: pytest.MonkeyPatch, *, told: bool
) -> tuple[pd.DataFrame, Any]:
    """Map ``rows`` unique prompts over two groq keys the server limits to ``rpm`` each;
    ``told``: the client knows the limit (GROQ_RPM_LIMIT), else it learns from 429s."""
    with FakeOpenAIServer(rpm_per_key=dict.fromkeys(KEYS, rpm), time_scale=SCALE) as srv:
        monkeypatch.setenv("GROQ_API_KEYS", ",".join(KEYS))
        monkeypatch.setenv("GROQ_BASE_URL", srv.base_url)
        if told:
            monkeypatch.setenv("GROQ_RPM_LIMIT", str(rpm))
        monkeypatch.setattr(ray_engine.settings, "time_scale", SCALE)
        out = frame(rows, rows).llm.map("Echo {text}", model="groq:m", engine="ray",
                                        progress=False)  # fmt: skip
        return out, srv.stats()


def test_one_rate_budget_across_actors_no_request_before_retry_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The client is not told the limit, so the workers meet 429s with Retry-After, and the
    # coordinator holds each key back for all of them.
    out, stats = map_on_limited_keys(160, 20, monkeypatch, told=False)
    assert out["llm_error"].isna().all() and out["llm"].notna().all()
    assert sum(len(v) for v in stats.rate_limited.values()) > 0  # the limit was reached
    assert stats.early == []  # and nothing arrived on a key before its Retry-After
    assert set(stats.per_key) == set(KEYS)


def test_a_limit_the_client_knows_is_never_exceeded_by_any_actor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, stats = map_on_limited_keys(90, 15, monkeypatch, told=True)
    assert out["llm"].notna().all()
    assert stats.statuses.get(429, 0) == 0 and stats.early == []
    assert stats.statuses[200] == 90


def test_failed_rows_are_data_and_the_rest_is_answered() -> None:
    def answer(body: dict[str, Any]) -> str:
        if body["messages"][-1]["content"].endswith("3"):
            raise ValueError("this row always fails")
        return answer_for(body)

    df = frame(60, 30)
    with FakeOpenAIServer(answer=answer) as srv:
        register(srv)
        c = lm.client("fake:m", max_retries=0)
        out = df.llm.map("Echo {text}", model=c, engine="ray", progress=False)
    failed = df["text"].str.endswith("3")
    assert out.loc[failed, "llm"].isna().all() and out.loc[~failed, "llm"].notna().all()
    assert out.loc[failed, "llm_error"].str.contains("500").all()
    assert out.loc[~failed, "llm_error"].isna().all()


class Recorder:
    """A progress display that keeps what it was shown."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def start(self, stats: Any) -> None:
        self.seen.append(stats.done)

    def update(self, stats: Any) -> None:
        self.seen.append(stats.done)

    def close(self, stats: Any) -> None:
        self.seen.append(stats.done)


def test_usage_and_live_progress_are_the_drivers() -> None:
    df = frame(120, 120)
    shown = Recorder()
    with FakeOpenAIServer(latency=0.02) as srv:
        register(srv)
        lm.reset_usage()
        df.llm.map("Echo {text}", model="fake:m", engine="ray", progress=shown, cache=False)
    report = lm.usage()
    assert report.session.calls == 120
    assert report.session.input_tokens > 0 and report.session.output_tokens > 0
    # Progress moved in steps while the job ran, not once at the end.
    steps = sorted(set(shown.seen))
    assert len(steps) >= 4 and steps[-1] == 120 and shown.seen == sorted(shown.seen)


def test_keys_never_reach_task_arguments_or_rays_logs(cluster: RayCluster) -> None:
    df = frame(20, 20)
    with FakeOpenAIServer() as srv:
        register(srv)
        c = lm.client("fake:m")
        with WorkerSecrets(c) as secrets:
            located = secrets.locate(ClientSpec.of(c))  # as the actors receive it
            assert located.secrets_path  # the keys are in the file it names, not in it
            spec = pickle.dumps(located)
        assert KEY.encode() not in spec and KEY[-12:].encode() not in spec
        df.llm.map("Echo {text}", model=c, engine="ray", progress=False)
    leaked = []
    for path in cluster.logs.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if KEY.encode() in path.read_bytes():
                    leaked.append(str(path))
            except OSError:
                continue
    assert leaked == []
    # The job's secrets file is gone (named by this driver's pid).
    assert not list(Path(tempfile.gettempdir()).glob(f"llm_magics-ray-{os.getpid()}-*"))


_KILLED_RUN = """
import sys, ray, pandas as pd, llm_magics as lm
from llm_magics._batch import ray_engine
ray.init(address=sys.argv[1], log_to_driver=False)
ray_engine.settings.actors = 2
lm.register("fake", sys.argv[2], api_key=sys.argv[3])
df = pd.DataFrame({"text": [f"item {i}" for i in range(int(sys.argv[4]))]})
df.llm.map("Echo {text}", model="fake:m", engine="ray", progress=False, concurrency=4)
"""


def test_a_rerun_after_the_driver_was_killed_sends_only_what_is_missing(
    cluster: RayCluster, tmp_path: Path
) -> None:
    n = 80
    with FakeOpenAIServer(latency=0.25) as srv:
        proc = subprocess.Popen(
            [sys.executable, "-c", _KILLED_RUN, cluster.address, srv.base_url, KEY, str(n)],
            env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while srv.request_count < 25 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert 25 <= srv.request_count < n  # killed midway
        time.sleep(1.0)  # the killed job's actors go away; in-flight answers land
        cached = lm.cache_stats().entries
        first = srv.request_count
        assert cached >= 20
        register(srv)
        df = pd.DataFrame({"text": [f"item {i}" for i in range(n)]})
        out = df.llm.map("Echo {text}", model="fake:m", engine="ray", progress=False)
        assert out["llm"].notna().all()
        assert srv.request_count - first == n - cached  # only the missing ones were sent
    # The killed driver could not delete its secrets file; this job's start did.
    assert not list(Path(tempfile.gettempdir()).glob(f"llm_magics-ray-{proc.pid}-*"))


def test_a_ray_job_and_another_kernel_share_the_redis_cache(redis_url: str) -> None:
    df = frame(30, 30)
    with FakeOpenAIServer() as srv:
        register(srv)
        c = lm.client("fake:m", cache=redis_url)
        df.llm.map("Echo {text}", model=c, engine="ray", progress=False)
        assert srv.request_count == 30
        kernel = (
            "import pandas as pd, llm_magics as lm;"
            f"lm.register('fake', {srv.base_url!r}, api_key={KEY!r});"
            f"df = pd.DataFrame({{'text': [f'item {{i}}' for i in range(30)]}});"
            "out = df.llm.map('Echo {text}', model='fake:m', progress=False);"
            "print(out['llm'].notna().sum())"
        )
        env = {**os.environ, "LLM_MAGICS_CACHE_URL": redis_url}
        done = subprocess.run(
            [sys.executable, "-c", kernel], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "30"
        assert srv.request_count == 30  # the other kernel's rows were all hits


def test_max_cost_stops_a_ray_job_and_the_rows_not_sent_say_so() -> None:
    # Answers three times longer than the estimate's guess: the estimate fits, the spend does not.
    def long_answer(body: dict[str, Any]) -> str:
        return " ".join(["word"] * 400)

    df = frame(200, 200)
    with FakeOpenAIServer(answer=long_answer, latency=0.02) as srv:
        register(srv)
        lm.set_price("fake:m", input=1000.0, output=1000.0)  # USD per 1M tokens
        estimate = df.llm.estimate("Echo {text}", model="fake:m")
        assert estimate.usd is not None
        cap = round(estimate.usd * 1.4, 2)
        out = df.llm.map("Echo {text}", model="fake:m", engine="ray", progress=False,
                         max_cost=cap, concurrency=4)  # fmt: skip
        sent = srv.request_count
        time.sleep(1.0)  # the stopped job's last answers land in the cache
        refused = out["llm_error"].fillna("").str.contains("max_cost= of .* is reached")
        answered = out["llm"].notna()
        assert refused.any() and answered.any()
        assert (answered | refused).all()  # every row: an answer or the reason it has none
        # Batches already running when the cap was reached finished on the workers: their
        # answers are cached, so raising the limit pays only for the rest.
        assert answered.sum() <= sent < 200
        again = df.llm.map("Echo {text}", model="fake:m", engine="ray", progress=False)
        assert again["llm"].notna().all()
        assert srv.request_count == 200


def test_bad_engine_choices_say_what_to_do() -> None:
    df = frame(4, 4)
    with pytest.raises(lm.ConfigError, match="engine= takes 'local'"):
        df.llm.map("Echo {text}", model="local", engine="spark")
    with pytest.raises(lm.ConfigError, match="use engine='local' with it"):
        df.llm.map("Echo {text}", model="local", engine="ray", mode="batch")
    with pytest.raises(lm.ConfigError, match="actors= must be a whole number"):
        ray_engine.actor_count(None, 0)


def test_a_worker_without_the_jobs_keys_says_which_variable_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GROQ_API_KEYS", ",".join(KEYS))
    spec = ClientSpec.of(lm.client("groq:m"))
    monkeypatch.setenv("GROQ_API_KEYS", "sk-some-other-key-0000000000")
    with pytest.raises(lm.ConfigError, match="with GROQ_API_KEYS, GROQ_API_KEY set"):
        spec.key_pool()
    monkeypatch.setenv("GROQ_API_KEYS", ",".join(KEYS))
    pool = spec.key_pool()
    assert pool is not None and pool.fingerprints() == spec.key_fingerprints


def test_without_ray_installed_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(lm.ConfigError, match=r"pip install 'llm_magics\[ray\]'"):
        ray_engine.ray_module()
