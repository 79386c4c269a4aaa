"""The embedded models behind the ``local`` provider, loaded once per process.

* Chat and embeddings: SmolLM2-135M-Instruct (or ``LLM_MAGICS_LOCAL_MODEL``), run by
  llama-cpp-python; the embeddings come from a second ``Llama`` on the same GGUF.
* Speech: Whisper tiny.en (or ``LLM_MAGICS_LOCAL_WHISPER``), run by faster-whisper.

Where the files are: :mod:`llm_magics._local.files`; nothing here ever downloads weights
(``HF_HUB_OFFLINE=1`` is set before faster-whisper is imported, unless already set). The
thread every model call runs on: :mod:`llm_magics._local.worker`.

Thread safety: every model is built at most once per process (per Jupyter kernel), lazily, under
a lock, and rebuilt only when its file setting changes. A ``Llama`` object is not thread-safe,
so every call into a model runs on the single :data:`worker` thread, holding that model's lock;
the event loop only awaits. A job can be stopped between two tokens through its cancel event.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from .._core.errors import ConfigError
from .files import (
    GGUF_NAME,
    INSTALL_HINT,
    MODEL_ENV,
    WHISPER_ENV,
    check_gguf,
    gguf_path,
    require,
    whisper_path,
)
from .llama_log import quiet_llama_log, recent_llama_log
from .worker import Done, Worker, worker

__all__ = [
    "GGUF_NAME",
    "INSTALL_HINT",
    "MODEL_ENV",
    "WHISPER_ENV",
    "Done",
    "Worker",
    "chat_model",
    "check_gguf",
    "cpu_threads",
    "embedding_model",
    "gguf_path",
    "require",
    "whisper_model",
    "whisper_path",
    "worker",
]

T = TypeVar("T")

CHAT_CONTEXT = 2048
EMBED_CONTEXT = 512


def cpu_threads() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's count)."""
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        with contextlib.suppress(OSError):
            return max(1, len(affinity(0)))
    return max(1, os.cpu_count() or 1)


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
    quiet_llama_log(llama_cpp)
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
