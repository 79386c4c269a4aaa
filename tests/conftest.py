"""Shared fixtures: every test starts from a clean environment (no provider keys, no base
URLs, a private cache directory, a fresh kernel session: registry, usage totals, price overrides), the way a user's fresh kernel
would."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# One real llama.cpp server for the embedded model, shared by every test that asks for it.
from tests.support.llama import forward, llama_server  # noqa: F401
from tests.support.ray_cluster import RayCluster, ray_cluster
from tests.support.redis_server import RedisServer, redis_server

# The HTTP stack under test: `LLM_MAGICS_HTTP=httpx2 python3 -m pytest` runs the suite over
# httpx2's own pool instead of the default aiohttp transport.
_KEPT = frozenset({"LLM_MAGICS_HTTP"})
_ENV_PREFIXES = ("OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_", "GROQ_", "CEREBRAS_", "OLLAMA_")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name in _KEPT:
            continue
        if name.startswith(_ENV_PREFIXES) or name.startswith("LLM_MAGICS_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LLM_MAGICS_CACHE_DIR", str(tmp_path / "llm-cache"))
    # The user's own prompt templates (a folder of TOML files) never leak in either.
    monkeypatch.setenv("LLM_MAGICS_TEMPLATES_DIR", str(tmp_path / "templates"))
    # Saved sessions (lm.session_store(), llm-magics) go to a folder of the test's own.
    monkeypatch.setenv("LLM_MAGICS_SESSIONS_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # A working directory without a .env, so the user's own settings never leak in.
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    from llm_magics._core.session import SESSION

    SESSION.reset()
    yield
    SESSION.reset()


@pytest.fixture(scope="session")
def redis_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the whole run (started on first use)."""
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_process: RedisServer) -> str:
    """The URL of an empty Redis database."""
    redis_process.flushall()
    return redis_process.url


@pytest.fixture(scope="session")
def ray_driver() -> Iterator[RayCluster]:
    """A real two-CPU Ray cluster (``ray start --head``) with this process as its driver."""
    import tempfile

    import ray

    # A loopback test cluster with no token (Ray 2.5x turns token auth on by default and
    # keeps the token in ~/.ray, shared with any other cluster on the machine).
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # Ray's socket paths must stay short: a temp dir of its own under /tmp.
    with ray_cluster(Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))) as cluster:
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        try:
            yield cluster
        finally:
            ray.shutdown()
