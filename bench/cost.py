"""What 10,000 classify rows cost, billed by a fake OpenAI account that charges by the published
rules (``tests/support/billing.py``: gpt-4o-mini list prices; prompts of 1,024 tokens or more
cached by prefix in 128-token steps, cached input at the cached price; Batch API requests at
half of every price).

The task: 10,000 reviews, 20 % of them repeats of others (8,000 distinct), a 1,500-token
instruction shared by every row, three labels. Contenders, each on a fresh account and a fresh
response cache, one run:

* ``naive online``: one request per row (no dedup) on an account without prompt caching:
  what a LiteLLM / LOTUS loop pays where the cache gives nothing;
* ``naive online, auto cache``: the same loop where OpenAI's automatic prefix cache applies
  (the instruction sent first as the system prompt), for reference;
* ``llm_magics online``: ``df.llm.classify(..., system=INSTRUCTION)``: dedup, the shared
  prefix first and byte-identical, one ``prompt_cache_key`` for the map;
* ``llm_magics batch``: the same call with ``mode="batch"`` (the fake account completes the
  job on demand: nothing waits in real time).

Prints the billed USD of each, its ratio to naive online, and the targets (llm_magics batch
<= 25 % of naive online, llm_magics online <= 50 %). Also checks that llm_magics' own
accounting (``lm.usage()``) equals what the account billed.

    python bench/cost.py [--rows 10000] [--duplicates 0.2] [--instruction-tokens 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx2  # noqa: E402
import pandas as pd  # noqa: E402

import llm_magics as lm  # noqa: E402
from llm_magics._batch.job_wire import JobPolling  # noqa: E402
from llm_magics._cache.store import ResponseCache  # noqa: E402
from llm_magics._core.session import SESSION  # noqa: E402
from tests.support.batch_server import FakeBatchServer  # noqa: E402

MODEL = "gpt-4o-mini"
LABELS = ["positive", "negative", "neutral"]
KEY = "sk-bench-cost-0000000000000000"
WORDS = [
    "service",
    "food",
    "staff",
    "price",
    "portion",
    "taste",
    "delivery",
    "order",
    "table",
    "menu",
    "wait",
    "dessert",
    "drink",
    "quality",
    "noise",
    "clean",
    "friendly",
    "slow",
    "cold",
    "warm",
    "fresh",
    "late",
    "early",
    "booking",
    "value",
    "view",
]


def instruction(tokens: int) -> str:
    """A long, fixed instruction of about ``tokens`` tokens (4 characters each)."""
    rng = random.Random(17)
    rules = []
    while sum(len(r) for r in rules) < tokens * 4:
        words = " ".join(rng.choice(WORDS) for _ in range(12))
        rules.append(f"Rule {len(rules) + 1}: weigh {words} before you decide. ")
    return "You label restaurant reviews.\n" + "".join(rules)


def reviews(rows: int, duplicates: float) -> pd.DataFrame:
    rng = random.Random(7)
    unique = round(rows * (1 - duplicates))
    texts = [
        f"Review {i}: " + " ".join(rng.choice(WORDS) for _ in range(30)) for i in range(unique)
    ]
    texts += [rng.choice(texts) for _ in range(rows - unique)]
    rng.shuffle(texts)
    return pd.DataFrame({"review": texts})


def answer(text: str) -> str:
    return json.dumps({"label": LABELS[sum(map(ord, text)) % 3]})


def naive(frame: pd.DataFrame, system: str, prompt_cache: bool) -> tuple[FakeBatchServer, float]:
    """One raw request per row, under a semaphore of 16, as a LiteLLM-style loop sends them."""
    server = FakeBatchServer("openai", answer=answer, validate=False, prompt_cache=prompt_cache)

    async def main() -> None:
        transport = server.transport()
        async with httpx2.AsyncClient(transport=transport, base_url="https://api.openai.com") as c:
            gate = asyncio.Semaphore(16)

            async def one(review: str) -> None:
                body = {
                    "model": MODEL,
                    "temperature": 0,
                    "messages": [
                        {"role": "system", "content": system},
                        {"role": "user", "content": f"Label this review: {review}"},
                    ],
                }
                async with gate:
                    reply = await c.post("/v1/chat/completions", json=body)
                    reply.raise_for_status()

            await asyncio.gather(*(one(r) for r in frame.review))

    started = time.perf_counter()
    asyncio.run(main())
    return server, time.perf_counter() - started


def ours(frame: pd.DataFrame, system: str, mode: str) -> tuple[FakeBatchServer, float, float]:
    """``df.llm.classify`` on a fresh kernel session and response cache."""
    SESSION.reset()
    server = FakeBatchServer("openai", answer=answer, validate=False)

    async def finish_the_job(seconds: float) -> None:
        server.complete()

    SESSION.put(JobPolling, JobPolling(sleep=finish_the_job))
    with tempfile.TemporaryDirectory() as tmp:
        cache = ResponseCache(Path(tmp) / "cache")
        client = lm.client(
            f"openai:{MODEL}", api_key=KEY, transport=server.transport(), cache=cache
        )
        started = time.perf_counter()
        out = frame.llm.classify(
            "Label this review: {review}", LABELS, model=client, system=system, mode=mode,
            progress=False,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        cache.close()
    assert out["label_error"].isna().all(), out["label_error"].dropna().head()
    return server, elapsed, lm.usage().session.cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--duplicates", type=float, default=0.2)
    parser.add_argument("--instruction-tokens", type=int, default=1_500)
    args = parser.parse_args()
    frame = reviews(args.rows, args.duplicates)
    system = instruction(args.instruction_tokens)
    print(
        f"{args.rows:,} classify rows ({frame.review.nunique():,} distinct), a "
        f"{len(system) // 4:,}-token shared instruction, {MODEL} at list prices\n"
    )
    results: list[tuple[str, FakeBatchServer, float, float | None]] = []
    server, elapsed = naive(frame, system, prompt_cache=False)
    results.append(("naive online (no dedup, no prompt caching)", server, elapsed, None))
    server, elapsed = naive(frame, system, prompt_cache=True)
    results.append(("naive online, automatic prompt cache", server, elapsed, None))
    for mode in ("online", "batch"):
        server, elapsed, counted = ours(frame, system, mode)
        results.append((f"llm_magics {mode}", server, elapsed, counted))
    report(results)


def report(results: list[tuple[str, FakeBatchServer, float, float | None]]) -> None:
    base = results[0][1].bill.usd
    header = (
        f"{'contender':<45}{'requests':>10}{'cached tok':>13}{'billed USD':>12}{'vs naive':>10}"
    )
    print(header + f"{'time':>8}")
    for name, server, elapsed, counted in results:
        bill = server.bill
        print(
            f"{name:<45}{bill.requests:>10,}{bill.cached_tokens:>13,}{bill.usd:>12.4f}"
            f"{bill.usd / base:>9.1%}{elapsed:>7.1f}s"
        )
        if counted is not None and abs(counted - bill.usd) > 1e-9 * max(1.0, bill.usd):
            print(f"    ! llm_magics counted {counted:.6f} USD, the account billed {bill.usd:.6f}")
    online = results[2][1].bill.usd / base
    batch = results[3][1].bill.usd / base
    print()
    print(f"llm_magics online: {online:.1%} of naive (target <= 50%: {_ok(online <= 0.5)})")
    print(f"llm_magics batch:  {batch:.1%} of naive (target <= 25%: {_ok(batch <= 0.25)})")


def _ok(passed: bool) -> str:
    return "met" if passed else "MISSED"


if __name__ == "__main__":
    main()
