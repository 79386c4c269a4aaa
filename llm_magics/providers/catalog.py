"""The vendor catalog: one entry per vendor, holding every fact about it in one place."""

from __future__ import annotations

import re

__all__ = ["undated"]

_DATE_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


def undated(model: str) -> str:
    """``model`` without a snapshot date (``gpt-4o-2024-08-06`` -> ``gpt-4o``)."""
    return _DATE_SUFFIX.sub("", model)
