"""The vendor catalog: one entry per vendor, holding every fact about it in one place.

What an entry is lives in ``_entry`` (:class:`Vendor`, :class:`Quirks`, :class:`MediaPolicy`)
and ``_profile`` (:class:`ModelProfile`: a model's limits and prices); the built-in entries live
in ``_vendors``. Protocol code reads these facts from the provider's ``vendor``; it never tests a
vendor's name. A server registered with ``lm.register(..., like="openai")`` gets a copy of that
vendor's entry (quirks, media limits, model profiles) under its own name.
"""

from __future__ import annotations

from ._entry import (
    MB,
    BatchPolicy,
    MediaPolicy,
    PromptCaching,
    Quirks,
    Vendor,
    keys_from_env,
    normalise_ollama_host,
    undated,
)
from ._profile import ModelProfile
from ._vendors import DEFAULT_POLICY, VENDORS

__all__ = [
    "DEFAULT_POLICY",
    "MB",
    "VENDORS",
    "BatchPolicy",
    "MediaPolicy",
    "ModelProfile",
    "PromptCaching",
    "Quirks",
    "Vendor",
    "keys_from_env",
    "normalise_ollama_host",
    "undated",
]
