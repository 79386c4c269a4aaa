"""Key pools: sliding-window RPM/RPD/TPM per key, waiting without busy-waiting, 429 cool-down,
dead keys, limits from arguments / environment / model profiles / 429s, masked status; and
rotation against a real local server that enforces per-key limits with 429 + Retry-After.

Unit tests drive the pool on an injected clock; the server tests run on a sped-up clock
shared by the server and the pool, so "per minute" takes seconds."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import llm_magics as lm
from llm_magics._client.keys import COOLDOWN_MAX, MINUTE, KeyPool, RateLimits
from llm_magics._core.secrets import APIKey
from llm_magics._runtime import loop as _loop
from llm_magics._runtime.retry import RetryPolicy
from tests.support.server import FakeOpenAIServer, SendLog

SECRETS = ["sk-test-alpha-0000AAAA", "sk-test-bravo-1111BBBB", "sk-test-charlie-2222CCCC"]


class FakeTime:
    """An injected clock and sleep: sleeping advances the clock (never a real wait) and
    records how long each sleeper wanted to wait."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now = max(self.now, self.now + seconds)
        await asyncio.sleep(0)


def pool(keys: list[str] | None = None, **options: Any) -> tuple[KeyPool, FakeTime]:
    t = FakeTime()
    p = KeyPool(
        "groq", keys or SECRETS, env="GROQ_API_KEYS", clock=t.clock, sleep=t.sleep, **options
    )
    return p, t


def acquire(p: KeyPool, tokens: int = 0, model: str | None = None) -> APIKey:
    return asyncio.run(p.acquire(tokens, model=model))


# --- choosing keys -------------------------------------------------------------------------


def test_without_limits_keys_are_handed_out_round_robin() -> None:
    p, t = pool()
    hints = [acquire(p).hint for _ in range(6)]
    assert hints == ["AAAA", "BBBB", "CCCC", "AAAA", "BBBB", "CCCC"]
    assert t.sleeps == []


def test_rpm_limit_lets_each_key_send_its_share_then_waits_for_the_oldest_slot() -> None:
    p, t = pool(limits=RateLimits(rpm=2), margin=0.5)
    start = t.now
    first = [acquire(p).hint for _ in range(6)]
    assert sorted(first) == ["AAAA", "AAAA", "BBBB", "BBBB", "CCCC", "CCCC"]
    assert t.sleeps == []
    seventh = acquire(p)
    # One sleep, straight to the moment the first slot of a minute ago frees: no polling.
    assert t.sleeps == [pytest.approx(MINUTE + 0.5)]
    assert t.now == pytest.approx(start + MINUTE + 0.5)
    assert seventh.hint == "AAAA"


def test_waiting_for_headroom_sleeps_once_per_wait_never_busy_waits() -> None:
    p, t = pool(["sk-only-one-key-9999"], limits=RateLimits(rpm=1), margin=0.0)
    for _ in range(5):
        acquire(p)
    assert len(t.sleeps) == 4
    assert all(s == pytest.approx(MINUTE) for s in t.sleeps)


def test_concurrent_acquirers_never_exceed_the_rpm_limit_of_any_key() -> None:
    p, t = pool(limits=RateLimits(rpm=3), margin=0.0)
    handed: list[tuple[float, str]] = []

    async def one() -> None:
        key = await p.acquire()
        handed.append((t.now, key.hint))

    async def burst() -> None:
        await asyncio.gather(*(one() for _ in range(30)))

    asyncio.run(burst())
    assert len(handed) == 30
    for when, hint in handed:
        in_window = [w for w, h in handed if h == hint and when - MINUTE < w <= when]
        assert len(in_window) <= 3
    # 30 requests at 9 per minute: the last one goes three minutes after the first.
    assert max(w for w, _ in handed) - min(w for w, _ in handed) == pytest.approx(3 * MINUTE)


def test_rpd_limit_holds_a_key_back_until_a_day_after_its_oldest_requests() -> None:
    p, t = pool(["sk-only-one-key-9999"], limits=RateLimits(rpd=3), margin=0.0)
    for _ in range(3):
        acquire(p)
    acquire(p)
    assert len(t.sleeps) == 1
    assert 86_400 <= t.sleeps[0] <= 86_400 + MINUTE


def test_tpm_limit_reserves_the_estimate_and_record_settles_the_real_count() -> None:
    p, t = pool(["sk-only-one-key-9999"], limits=RateLimits(tpm=1_000), margin=0.0)
    key = acquire(p, tokens=600)
    acquire(p, tokens=600)  # 1,200 reserved would exceed 1,000: waits a minute
    assert t.sleeps == [pytest.approx(MINUTE)]
    p.record(key, input_tokens=50, output_tokens=50)
    # The second request's 600 are still reserved; a 300-token request fits next to them.
    acquire(p, tokens=300)
    assert len(t.sleeps) == 1


def test_a_request_larger_than_the_whole_tpm_budget_still_goes_once_the_window_is_empty() -> None:
    p, t = pool(["sk-only-one-key-9999"], limits=RateLimits(tpm=100), margin=0.0)
    acquire(p, tokens=50)
    acquire(p, tokens=5_000)
    assert t.sleeps == [pytest.approx(MINUTE)]


# --- 429 and 401 ---------------------------------------------------------------------------


def test_a_429_cools_only_that_key_down_for_its_retry_after() -> None:
    p, t = pool()
    a = acquire(p)
    p.rate_limited(a, 30.0)
    assert [acquire(p).hint for _ in range(4)] == ["BBBB", "CCCC", "BBBB", "CCCC"]
    t.now += 30.0
    assert "AAAA" in {acquire(p).hint for _ in range(3)}


def test_without_retry_after_the_cooldown_doubles_from_60_s_up_to_an_hour() -> None:
    p, t = pool(["sk-only-one-key-9999"], learn=False)
    key = acquire(p)
    waits = []
    for _ in range(8):
        p.rate_limited(key, None)
        before = t.now
        acquire(p)
        waits.append(t.now - before)
    expected = (60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 3600.0, 3600.0)
    assert COOLDOWN_MAX == 3600.0
    assert waits == [pytest.approx(w) for w in expected]
    p.record(key)  # a success resets the back-off
    p.rate_limited(key, None)
    before = t.now
    acquire(p)
    assert t.now - before == pytest.approx(60.0)


def test_when_every_key_cools_down_acquire_sleeps_until_the_first_one_is_back() -> None:
    p, t = pool()
    keys = [acquire(p) for _ in range(3)]
    for key, wait in zip(keys, (50.0, 20.0, 40.0), strict=True):
        p.rate_limited(key, wait)
    assert acquire(p).hint == "BBBB"
    assert t.sleeps == [pytest.approx(20.0)]


def test_a_rejected_key_is_skipped_and_named_by_its_last_four_characters_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    p, _ = pool()
    bad = acquire(p)
    with caplog.at_level(logging.WARNING, logger="llm_magics._client.keys"):
        p.auth_failed(bad)
        p.auth_failed(bad)  # reported once
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "...AAAA" in message and "GROQ_API_KEYS" in message
    assert all(s not in message for s in SECRETS)
    assert {acquire(p).hint for _ in range(6)} == {"BBBB", "CCCC"}
    assert p.status()[0]["state"] == "dead (rejected)"


def test_when_every_key_is_rejected_the_error_names_them_masked_and_the_variable() -> None:
    p, _ = pool()
    for _ in range(3):
        p.auth_failed(acquire(p))
    with pytest.raises(lm.AuthenticationError) as info:
        acquire(p)
    text = f"{info.value} {info.value!r}"
    assert "...AAAA" in text and "...CCCC" in text and "GROQ_API_KEYS" in text
    assert all(s not in text for s in SECRETS)


# --- where limits come from ----------------------------------------------------------------


def test_limits_come_from_the_environment_per_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_RPM_LIMIT", "1")
    monkeypatch.setenv("GROQ_TPM_LIMIT", "6000")
    p, t = pool(["sk-only-one-key-9999"])
    assert p.limits_for() == RateLimits(rpm=1, tpm=6000)
    acquire(p)
    acquire(p)
    assert len(t.sleeps) == 1
    # Arguments win over the environment.
    p2, _ = pool(limits=RateLimits(rpm=5))
    assert p2.limits_for().rpm == 5


def test_a_bad_limit_in_the_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_RPD_LIMIT", "lots")
    p, _ = pool()
    with pytest.raises(lm.ConfigError, match="GROQ_RPD_LIMIT"):
        acquire(p)


def test_limits_come_from_the_model_profile_when_nothing_else_sets_them() -> None:
    lm.register_model_profile("groq:llama-3.1-8b-instant", rpm=1, rpd=14_400)
    p, t = pool(["sk-only-one-key-9999"])
    assert p.limits_for("llama-3.1-8b-instant") == RateLimits(rpm=1, rpd=14_400)
    assert p.limits_for("another-model") == RateLimits()
    acquire(p, model="llama-3.1-8b-instant")
    acquire(p, model="llama-3.1-8b-instant")
    assert len(t.sleeps) == 1


def test_a_429_teaches_the_pool_how_many_requests_a_key_gets_per_minute() -> None:
    p, t = pool(["sk-only-one-key-9999"], margin=0.0)
    keys = [acquire(p) for _ in range(6)]
    for key in keys[4:]:  # the provider took four, refused two
        p.rate_limited(key, 1.0)
    assert p.status()[0]["rpm"] == "4/4 (learned)"
    t.now += 1.0
    acquire(p)  # the four that got through fill the learned limit: wait for the oldest
    assert t.sleeps and t.sleeps[-1] == pytest.approx(MINUTE - 1.0)


def test_a_single_stray_429_does_not_throttle_a_key() -> None:
    p, t = pool(["sk-only-one-key-9999"])
    acquire(p)
    p.rate_limited(acquire(p), 0.0)  # one got through, the next was refused
    assert "learned" not in p.status()[0]["rpm"]
    for _ in range(10):
        acquire(p)
    assert t.sleeps == []


def test_one_429_with_retry_after_1_waits_one_second_and_learns_no_limit() -> None:
    # Case 7 of the hardening issue: four got through, the fifth met a 429 with
    # Retry-After: 1. The next request waits that one second, not a learned minute.
    p, t = pool(["sk-only-one-key-9999"], margin=0.0)
    keys = [acquire(p) for _ in range(5)]
    p.rate_limited(keys[-1], 1.0)
    assert "learned" not in p.status()[0]["rpm"]
    acquire(p)
    assert t.sleeps == [pytest.approx(1.0)]
    for _ in range(10):
        acquire(p)
    assert t.sleeps == [pytest.approx(1.0)], "no throttling after the Retry-After"


def test_429s_that_alternate_with_successes_still_teach_the_limit() -> None:
    # A success resets the back-off; it must not keep a key from ever learning its limit.
    p, t = pool(["sk-only-one-key-9999"], margin=0.0)
    keys = [acquire(p) for _ in range(5)]
    p.rate_limited(keys[-1], 1.0)
    t.now += 1.0
    p.record(acquire(p))  # one got through after the Retry-After
    p.rate_limited(acquire(p), 1.0)  # and the next was refused again, within the minute
    assert p.status()[0]["rpm"].endswith("(learned)")


def test_every_wait_of_the_pool_is_announced_with_the_key_and_the_reason() -> None:
    from llm_magics._runtime.waits import Wait, listening

    heard: list[Wait] = []
    p, _ = pool(["sk-only-one-key-9999"])

    async def go() -> None:
        with listening(heard.append):
            key = await p.acquire()
            p.rate_limited(key, 30.0)
            await p.acquire()

    asyncio.run(go())
    assert [w.seconds for w in heard] == [pytest.approx(30.0)]
    assert "...9999 is cooling down after a 429" in str(heard[0])
    assert str(heard[0]).startswith("waiting 30 s: ")


# --- nothing leaks -------------------------------------------------------------------------


def test_status_repr_and_markdown_never_show_a_key() -> None:
    p, _ = pool(limits=RateLimits(rpm=10))
    p.record(acquire(p), 12, 3)
    rows = p.status()
    assert [r["key"] for r in rows] == ["...AAAA", "...BBBB", "...CCCC"]
    assert rows[0]["rpm"] == "1/10" and rows[0]["input_tokens"] == 12
    text = f"{rows} {p!r} {p._repr_markdown_()} {p._states[0].key} {p._states[0].key!r}"
    assert all(s not in text for s in SECRETS)


# --- rotation against a server that enforces per-key limits --------------------------------

SCALE = 30.0  # one virtual minute lasts two real seconds
R = 4  # requests per (virtual) minute per key


@pytest.fixture
def limited_server() -> Iterator[FakeOpenAIServer]:
    # violation_grace: requests the client had already sent when a 429 left the server are
    # not held against it; the exact check is on the client side (SendLog).
    with FakeOpenAIServer(rpm=R, time_scale=SCALE, latency=0.01, violation_grace=1.0) as srv:
        yield srv


def rotating_client(srv: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> lm.Client:
    monkeypatch.setenv("OPENAI_API_KEYS", ",".join(SECRETS))
    monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
    client = lm.client(
        "openai:fake-model", cache=False, retry=RetryPolicy(max_retries=10, backoff_base=0.01)
    )
    assert client.keys is not None and len(client.keys) == 3
    client.keys._clock = srv.clock  # the server's sped-up clock, shared

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds / SCALE)

    client.keys._sleep = sleep
    client.keys.margin = 3.0  # virtual seconds: 0.1 s of real transit-time jitter
    return client


def burst(client: lm.Client, n: int) -> list[lm.Response]:
    async def run() -> list[lm.Response]:
        return await asyncio.gather(*(client.achat(f"question {i}") for i in range(n)))

    # One virtual second is 33 ms of real time here: a full garbage collection late in the
    # suite (the parsed specs are large) can stall the client past the pool's margin, which
    # the server then sees as a request sent early. Collect first, and not during the burst.
    gc.collect()
    gc.disable()
    try:
        return _loop.run(run())
    finally:
        gc.enable()


def check_rotation(
    srv: FakeOpenAIServer, log: SendLog, answers: list[lm.Response], *, learning: bool = False
) -> None:
    n = len(answers)
    assert [a.text for a in answers] == [f"echo: question {i}" for i in range(n)]
    stats = srv.stats()
    assert log.sent_before_retry_after() == []
    assert stats.early == []
    times = sorted(t for ts in stats.accepted.values() for t in ts)
    refused = [t for ts in stats.rate_limited.values() for t in ts]
    # 429s are only allowed while the pool learns (or, with known limits, while a cold
    # client's first requests take longer than the margin to reach the server). A key learns
    # its limit from its second 429 in a minute (one 429 is trusted to mean its Retry-After),
    # so with unknown limits each key may meet one more 429 after the first window.
    late = [t for t in refused if t > times[0] + MINUTE]
    assert len(late) <= (len(SECRETS) if learning else 0)
    assert [t for t in refused if t > times[0] + 2 * MINUTE] == []
    # After the first window's burst, the keys together sustain close to 3 x R per minute.
    steady = (len(times) - 3 * R) / (times[-1] - times[0]) * MINUTE
    assert 0.85 * 3 * R <= steady <= 3 * R * 1.01


def test_three_keys_with_known_limits_reach_three_times_the_rate_of_one(
    limited_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_RPM_LIMIT", str(R))
    client = rotating_client(limited_server, monkeypatch)
    log = SendLog(client, limited_server.clock)
    check_rotation(limited_server, log, burst(client, 3 * R * 3))


def test_three_keys_with_unknown_limits_learn_them_and_never_send_before_retry_after(
    limited_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = rotating_client(limited_server, monkeypatch)
    log = SendLog(client, limited_server.clock)
    check_rotation(limited_server, log, burst(client, 3 * R * 3), learning=True)
    assert log.cooldowns  # the limits really were unknown at first
    assert client.keys is not None
    assert all(row["rpm"].endswith(f"/{R} (learned)") for row in client.keys.status())


def test_a_dead_key_in_the_pool_is_skipped_after_its_first_401(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FakeOpenAIServer(dead_keys=[SECRETS[1]]) as srv:
        client = rotating_client(srv, monkeypatch)
        answers = [client.chat(f"question {i}") for i in range(9)]
        assert [a.text for a in answers] == [f"echo: question {i}" for i in range(9)]
        assert srv.stats().per_key[SECRETS[1]] == 1
        # In a burst too, every answer arrives and the dead key gets nothing more.
        answers = burst(client, 12)
        assert len(answers) == 12
        per_key = srv.stats().per_key
    assert per_key[SECRETS[1]] == 1
    assert per_key[SECRETS[0]] + per_key[SECRETS[2]] == 9 + 12
    assert client.keys is not None
    assert [r["state"] for r in client.keys.status()] == ["ok", "dead (rejected)", "ok"]
