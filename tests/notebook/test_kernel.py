"""%%llm in a real ipykernel, over the Jupyter protocol: every output of a %%llm cell carries
that cell's request as its parent (so a frontend puts it in that cell and no other), and an
interrupt (SIGINT, what the stop button sends) ends a slow stream at once, keeping what
arrived. The answers come from the local fake OpenAI server over real HTTP."""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.server import FakeOpenAIServer

jupyter_client = pytest.importorskip("jupyter_client")

ANSWER = " ".join(f"w{i}" for i in range(60))


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(
        answer=lambda body: ANSWER, chunk_delay=0.05, stream_chunk_words=1
    ) as srv:
        yield srv


@pytest.fixture
def kernel(server: FakeOpenAIServer, tmp_path: Any) -> Iterator[Any]:
    env = {**os.environ, "LLM_MAGICS_CACHE_DIR": str(tmp_path / "cache")}
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel(env=env, cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        reply = kc.execute_interactive(
            f"%load_ext llm_magics\n%llm register fake {server.base_url} --model m",
            timeout=60,
        )
        assert reply["content"]["status"] == "ok"
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def collect(
    kc: Any, msg_id: str, *, on_message: Any = None, timeout: float = 60
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """iopub messages until the kernel is idle again for ``msg_id``, then its reply."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        seen.append(msg)
        if on_message is not None:
            on_message(msg)
        if (
            msg["msg_type"] == "status"
            and msg["content"]["execution_state"] == "idle"
            and msg["parent_header"].get("msg_id") == msg_id
        ):
            break
    reply = kc.get_shell_msg(timeout=10)
    assert reply["parent_header"]["msg_id"] == msg_id
    return reply, seen


def displays(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["msg_type"] in ("display_data", "update_display_data")]


def test_every_output_of_a_llm_cell_belongs_to_that_cell(kernel: Any) -> None:
    _, kc = kernel
    first = kc.execute("print('before')")
    collect(kc, first)
    msg_id = kc.execute("%%llm fake --no-cache\nCount.")
    reply, messages = collect(kc, msg_id)
    assert reply["content"]["status"] == "ok"
    shown = displays(messages)
    assert len(shown) >= 3, "a placeholder, updates while streaming, the usage line"
    assert {m["parent_header"]["msg_id"] for m in shown} == {msg_id}
    answer = [m for m in shown if "text/markdown" in m["content"]["data"]]
    assert answer[-1]["content"]["data"]["text/markdown"] == ANSWER
    assert len({m["content"]["transient"]["display_id"] for m in answer}) == 1


def test_an_interrupt_stops_the_stream_at_once_and_keeps_the_partial_answer(kernel: Any) -> None:
    km, kc = kernel
    updates: list[float] = []
    interrupted: list[float] = []

    def on_message(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "update_display_data":
            updates.append(time.monotonic())
            if len(updates) == 3 and not interrupted:
                interrupted.append(time.monotonic())
                km.interrupt_kernel()

    msg_id = kc.execute("%%llm fake --no-cache\nCount slowly.")
    reply, messages = collect(kc, msg_id, on_message=on_message)
    done = time.monotonic()
    content = reply["content"]
    assert content["status"] == "error" and content["ename"] == "KeyboardInterrupt"
    assert len(content["traceback"]) == 1 and "_llm" in content["traceback"][0]
    assert done - interrupted[0] < 1.5, "3 s of stream were left; the cell ended at once"
    last = displays(messages)[-1]["content"]["data"]["text/markdown"]
    assert last.startswith("w0 w1") and last.endswith("*[interrupted]*")
    check = kc.execute("print(_llm.finish_reason, len(_llm.text))")
    _, printed = collect(kc, check)
    reason, length = next(m for m in printed if m["msg_type"] == "stream")["content"][
        "text"
    ].split()
    assert reason == "interrupted" and 0 < int(length) < len(ANSWER)
