"""Key-rotation benchmark: achieved throughput / (keys x per-key limit) against a server that
enforces a per-key requests-per-minute limit with 429 + Retry-After.

The server (``tests/support/server.py``, in its own process, 50 ms latency) and the key pool
share a sped-up clock (``--scale 10``: a minute lasts 6 s), so several windows fit in seconds.
A burst of keys x limit x windows requests goes through ``client.achat`` with a pool of
``OPENAI_API_KEYS=k1,k2,k3``, in two modes:

* known limits: ``OPENAI_RPM_LIMIT`` set, the pool paces itself;
* learned limits: nothing set, the pool learns each key's limit from the first 429s.

Steady throughput is counted after the first window's burst, from the server's own arrival
times: (requests - keys x limit) / (last arrival - first arrival), per minute, divided by
keys x limit. Target >= 0.95 with zero 429s after the first window. "Sent before Retry-After"
is checked on the client side (``SendLog``): a request handed to the provider on a key after
its 429 arrived and before its Retry-After passed. Medians of several rounds.

    python bench/keys.py [--keys 3] [--rpm 20] [--windows 5] [--scale 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import llm_magics as lm  # noqa: E402
from llm_magics._client.keys import MINUTE  # noqa: E402
from llm_magics._runtime import loop as _loop  # noqa: E402
from llm_magics._runtime.retry import RetryPolicy  # noqa: E402
from tests.support.server import FakeOpenAIServer, SendLog  # noqa: E402


def one_round(
    srv: FakeOpenAIServer, keys: int, rpm: int, windows: int, known: bool
) -> dict[str, float]:
    from llm_magics._core.session import SESSION

    srv.reset()
    SESSION.reset()
    os.environ["OPENAI_API_KEYS"] = ",".join(f"bench-key-{i:04d}-{i}{i}{i}{i}" for i in range(keys))
    os.environ["OPENAI_BASE_URL"] = srv.base_url
    if known:
        os.environ["OPENAI_RPM_LIMIT"] = str(rpm)
    else:
        os.environ.pop("OPENAI_RPM_LIMIT", None)
    client = lm.client("openai:fake-model", cache=False, retry=RetryPolicy(max_retries=20))
    pool = client.keys
    assert pool is not None
    scale = srv.config.time_scale
    pool._clock = srv.clock

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds / scale)

    pool._sleep = sleep
    log = SendLog(client, srv.clock)
    n = keys * rpm * windows

    async def burst() -> None:
        answers = await asyncio.gather(*(client.achat(f"request {i}") for i in range(n)))
        assert [a.text for a in answers] == [f"echo: request {i}" for i in range(n)]

    _loop.run(burst())
    stats = srv.stats()
    times = sorted(t for ts in stats.accepted.values() for t in ts)
    refused = sorted(t for ts in stats.rate_limited.values() for t in ts)
    steady = (len(times) - keys * rpm) / (times[-1] - times[0]) * MINUTE
    return {
        "ratio": steady / (keys * rpm),
        "refused_first": sum(t <= times[0] + MINUTE for t in refused),
        "refused_later": sum(t > times[0] + MINUTE for t in refused),
        "early": len(log.sent_before_retry_after()),
        "after_429": len(stats.early),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=3)
    parser.add_argument("--rpm", type=int, default=20)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    os.environ["LLM_MAGICS_CACHE_DIR"] = tempfile.mkdtemp()

    print(
        f"{args.keys} keys x {args.rpm} requests/minute, {args.windows} windows "
        f"({args.keys * args.rpm * args.windows} requests per round), clock x{args.scale:g}, "
        f"server latency {args.latency * 1000:.0f} ms"
    )
    with FakeOpenAIServer(
        subprocess=True, rpm=args.rpm, time_scale=args.scale, latency=args.latency
    ) as srv:
        for known in (True, False):
            label = "known limits (OPENAI_RPM_LIMIT)" if known else "learned limits (from 429s)"
            rounds = []
            for n in range(args.rounds):
                result = one_round(srv, args.keys, args.rpm, args.windows, known)
                rounds.append(result)
                print(
                    f"  {label}, round {n + 1}: throughput {result['ratio']:.3f} of "
                    f"keys x limit; 429s in the first window {result['refused_first']:.0f}, "
                    f"after it {result['refused_later']:.0f}; requests sent before "
                    f"Retry-After {result['early']:.0f} (server saw {result['after_429']:.0f} "
                    "arrive after a 429 to their key, incl. ones already sent)"
                )
            print(
                f"{label}: median throughput / (keys x limit) = "
                f"{statistics.median(r['ratio'] for r in rounds):.3f} (target >= 0.95); "
                f"429s after the first window: {sum(r['refused_later'] for r in rounds):.0f} "
                f"(target 0); requests before Retry-After: "
                f"{sum(r['early'] for r in rounds):.0f}"
            )


if __name__ == "__main__":
    main()
