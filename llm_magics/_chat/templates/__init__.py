"""Prompt templates: :class:`Template` (template.py), the built-ins (builtins.py), the user's
TOML folder (folder.py), and ``lm.templates``, the library of all of them (library.py)."""

from __future__ import annotations

from .library import TemplateLibrary, UnknownTemplateError, templates
from .template import Template

__all__ = ["Template", "TemplateLibrary", "UnknownTemplateError", "templates"]
