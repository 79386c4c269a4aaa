"""``lm.templates``: the built-in templates and the user's own, by name.

``lm.templates.rag_qa``, ``lm.templates["rag_qa"]``, ``lm.templates.names()``; it is a
read-only mapping of names to :class:`~llm_magics._chat.templates.template.Template` (so
``"x" in lm.templates``, ``.items()``, ``len()`` work). The user's templates are the TOML files
of their folder (:mod:`llm_magics._chat.templates.folder`), read on first use and again when
the files change; one of them named like a built-in takes its place. An unknown name is an
error that suggests the closest one.

Thread safety: lookups may come from any thread; the folder is read under a lock.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..._core.errors import ConfigError
from .builtins import builtin_templates
from .folder import ENV_DIR, FolderScan, default_directory, fingerprint, scan
from .template import Template

__all__ = ["TemplateLibrary", "UnknownTemplateError", "templates"]


class UnknownTemplateError(ConfigError, KeyError, AttributeError):
    """No template of that name (a KeyError for ``templates[name]``, an AttributeError for
    ``templates.name``); the message suggests the closest name."""

    def __str__(self) -> str:
        return self.message


class TemplateLibrary(Mapping[str, Template]):
    """The templates of this kernel by name: built-ins, then the user's folder."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._builtins: dict[str, Template] | None = None
        self._scan: FolderScan | None = None

    # --- reading -------------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        """The folder of the user's templates (``LLM_MAGICS_TEMPLATES_DIR``)."""
        return default_directory()

    def _folder(self) -> FolderScan:
        directory = default_directory()
        with self._lock:
            current = self._scan
            if current is None or current.fingerprint != fingerprint(directory):
                current = self._scan = scan(directory)
            return current

    def _all(self) -> dict[str, Template]:
        if self._builtins is None:
            self._builtins = builtin_templates()
        return {**self._builtins, **self._folder().templates}

    def reload(self) -> None:
        """Read the folder again at the next lookup (it is also re-read when it changes)."""
        with self._lock:
            self._scan = None

    def problems(self) -> dict[str, str]:
        """Template files that could not be used: path -> what is wrong (file and field)."""
        return dict(self._folder().problems)

    # --- the mapping ---------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every template name: the built-ins in their order, then the user's, sorted."""
        found = self._all()
        builtins = self._builtins or {}
        return [n for n in builtins if n in found] + sorted(n for n in found if n not in builtins)

    def __getitem__(self, name: str) -> Template:
        found = self._all().get(name) if isinstance(name, str) else None
        if found is None:
            raise UnknownTemplateError(self.unknown_message(name))
        return found

    def __getattr__(self, name: str) -> Template:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._all())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._all()

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.names()))

    def __repr__(self) -> str:
        folder = self._folder()
        own = f", {len(folder.templates)} from {folder.directory}" if folder.templates else ""
        broken = f", {len(folder.problems)} broken (see .problems())" if folder.problems else ""
        return f"<lm.templates: {', '.join(self.names())}{own}{broken}>"

    def rows(self) -> list[dict[str, Any]]:
        """One row per template (name, variables, description, source): ``%llm templates``."""
        return [
            {
                "name": t.name,
                "variables": t.signature,
                "description": t.description,
                "source": t.source,
            }
            for t in (self[n] for n in self.names())
        ]

    def unknown_message(self, name: Any) -> str:
        """The error for a name that is no template: the closest names, where to put one."""
        folder = self._folder()
        for path, problem in folder.problems.items():
            if Path(path).stem == name:
                return f"template {name!r} could not be loaded: {problem}"
        names = self.names()
        close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        broken = (
            f" {len(folder.problems)} template file(s) could not be read: "
            + "; ".join(folder.problems.values())
            if folder.problems
            else ""
        )
        return (
            f"no template named {name!r}.{hint} Templates: {', '.join(names)}. Make one with "
            f"lm.Template(...), or save it as {folder.directory}/{name}.toml (the folder is "
            f"{ENV_DIR}).{broken}"
        )


#: ``lm.templates``.
templates = TemplateLibrary()
