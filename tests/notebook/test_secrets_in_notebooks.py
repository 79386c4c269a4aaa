"""A key a server echoes never reaches a saved notebook (cases 1 and 3 of the hardening
issue), as it happens for real: a notebook executed by nbclient in a real kernel, against a
proxy on loopback that quotes the Authorization header in its 400, under ``%xmode Verbose``,
with ``{Err[-1]}`` sent on to a model. The saved .ipynb and every request the proxy saw are
then searched for the key."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

KEY = "sk-echoed-in-a-notebook-0123456789abcdEFGH"


class EchoingProxy:
    """Answers every chat request 400, quoting its headers; records what it received."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                proxy.bodies.append(self.rfile.read(length).decode("utf-8", "replace"))
                quoted = "; ".join(f"{k}: {v}" for k, v in self.headers.items())
                body = json.dumps({"error": {"message": f"bad request; you sent {quoted}"}})
                self.send_response(400)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy() -> Iterator[EchoingProxy]:
    server = EchoingProxy()
    yield server
    server.close()


def test_a_key_echoed_by_a_proxy_is_in_no_saved_notebook_output_or_onward_prompt(
    proxy: EchoingProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECHO_API_KEY", KEY)
    cells = [
        "import llm_magics as lm\n%load_ext llm_magics\n"
        f"lm.register('echo', {proxy.url!r}, api_key_env='ECHO_API_KEY', default_model='m')",
        "%%llm echo:m --no-cache\nHello",
        "%%llm echo:m --no-cache\nWhat went wrong here? {Err[-1]}",
        "%xmode Verbose",
        "lm.client('echo:m', cache=False).chat('hi')",
        "%xmode Context",
        "try:\n    lm.client('echo:m', cache=False).chat('hi')\n"
        "except lm.LLMError as e:\n    print(repr(e), e.request.headers, e.response.text)",
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", allow_errors=True,
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()  # fmt: skip
    saved = tmp_path / "executed.ipynb"
    nbformat.write(nb, str(saved))
    text = saved.read_text()
    outputs = [json.dumps(cell.get("outputs", [])) for cell in nb.cells]
    assert "BadRequestError" in outputs[1], "the first cell failed as the proxy wanted"
    assert "...EFGH" in outputs[1], "the message still says which key"
    assert "headers" in outputs[4], "the verbose traceback printed the boundary's locals"
    assert "x-goog-api-key" not in outputs[6] and "Bearer ...EFGH" in outputs[6]
    assert KEY not in text and KEY[:-4] not in text
    assert len(proxy.bodies) >= 3 and "you sent" in proxy.bodies[1], "{Err[-1]} was sent on"
    assert not any(KEY in body or KEY[:-4] in body for body in proxy.bodies)
