"""Saved sessions: a folder of conversations by name, shared by the notebook, Python and the
terminal (``llm-magics chat --session NAME``).

    store = lm.session_store()              # LLM_MAGICS_SESSIONS_DIR, else the user data dir
    store.save(lm.session("review"))        # -> .../sessions/review.json (+ review.media/)
    conv = store.load("review")             # a Conversation, to go on with
    store.open("review")                    # ... and the kernel's `%%llm --session review`
    store.entries()                         # name, model, turns, tokens, cost, last activity

Each session is ``<name>.json``, written by :meth:`Conversation.save` (keys redacted), with
its media's bytes in ``<name>.media/`` beside it. Names are letters, digits, ``.``, ``_`` and
``-``, starting with a letter or digit, so a name is always one file of this folder. The
folder is made owner-only (0o700): conversations are private.

Thread and process safety: a save writes into a temporary folder inside the store, moves the
media files (named by content hash, so identical wherever they come from) into place, then
renames the JSON file over the old one. The rename is atomic, so a concurrent reader, in this
process or another, sees the old session or the new one, never half a file. Two writers of
the same session do not merge: the last save wins. Store objects hold no state besides their
folder and may be used from any thread.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .._core.errors import ConfigError
from .export import media_folder
from .memory import Conversation

__all__ = ["ENV_DIR", "SessionEntry", "SessionStore", "check_name", "session_store"]

ENV_DIR = "LLM_MAGICS_SESSIONS_DIR"
#: What a session name may hold, as a person reads it.
NAME_RULE = (
    "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 100 characters"
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_SUFFIX = ".json"


def default_directory() -> Path:
    """``LLM_MAGICS_SESSIONS_DIR``, else ``sessions`` in the user data directory."""
    configured = os.environ.get(ENV_DIR, "").strip()
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("llm_magics", appauthor=False)) / "sessions"


def check_name(name: object) -> str:
    """``name`` if it can name a saved session (one file of the store), else a ConfigError
    saying which characters are allowed."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        shown = "an empty name" if name in ("", None) else repr(name)
        hint = ""
        if isinstance(name, str) and ("/" in name or "\\" in name):
            hint = " (to read a file by its path, use lm.Conversation.load(path))"
        raise ConfigError(f"cannot use {shown} as a session name: use {NAME_RULE}{hint}")
    return name


@dataclass(frozen=True)
class SessionEntry:
    """One saved session, as a listing shows it. ``problem`` says why a file could not be
    read (its other fields are then empty)."""

    name: str
    path: Path
    model: str = ""
    turns: int = 0
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    unpriced: int = 0
    last_activity: float | None = None
    problem: str = ""

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class SessionStore:
    """The saved sessions of one folder (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder).expanduser() if folder is not None else default_directory()

    def __repr__(self) -> str:
        return f"SessionStore({str(self.folder)!r})"

    def path(self, name: str) -> Path:
        """Where the session ``name`` is (or would be) saved."""
        return self.folder / f"{check_name(name)}{_SUFFIX}"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(_NAME.fullmatch(name)) and self.path(name).is_file()

    def names(self) -> list[str]:
        """The saved sessions' names, sorted."""
        try:
            files = list(self.folder.iterdir())
        except OSError:
            return []
        found = (f.name[: -len(_SUFFIX)] for f in files if f.name.endswith(_SUFFIX))
        return sorted(
            n for n in found if _NAME.fullmatch(n) and (self.folder / f"{n}.json").is_file()
        )

    def save(self, conv: Conversation, name: str | None = None) -> Path:
        """Write ``conv`` as ``name`` (default: its own name); returns the file. Atomic: a
        reader sees the previous save or this one, whole."""
        name = check_name(name if name is not None else conv.name)
        target = self.path(name)
        self._make_folder()
        try:
            with tempfile.TemporaryDirectory(dir=self.folder, prefix=".saving-") as tmp:
                staged = Path(tmp) / target.name
                conv.save(staged)
                self._move_media(media_folder(staged), media_folder(target))
                os.replace(staged, target)
        except OSError as exc:
            raise ConfigError(
                f"cannot save session {name!r} in {self.folder}: {exc.strerror or exc}. Set "
                f"{ENV_DIR} to a writable folder."
            ) from exc
        return target

    def load(self, name: str) -> Conversation:
        """The saved session ``name`` (its name is the file's). Unknown: a ConfigError naming
        the folder and the closest saved names."""
        path = self.path(name)
        if not path.is_file():
            raise ConfigError(self._unknown(name))
        conv = Conversation.load(path)
        conv.name = name
        return conv

    def open(self, name: str) -> Conversation:
        """:meth:`load`, then keep it as this kernel's session ``name``: ``lm.session(name)``
        and ``%%llm --session name`` go on with it (replacing one of that name)."""
        from .._core.session import SESSION
        from .sessions import Conversations

        conv = self.load(name)
        SESSION.get(Conversations).put(conv)
        return conv

    def delete(self, name: str) -> None:
        """Remove the session ``name`` and its media. Unknown: ConfigError, as :meth:`load`."""
        path = self.path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            raise ConfigError(self._unknown(name)) from None
        shutil.rmtree(media_folder(path), ignore_errors=True)

    def entries(self) -> list[SessionEntry]:
        """One record per saved session, the least recently active first. Media are not
        read; a file that cannot be read is listed with its ``problem``."""
        found = [self._entry(name) for name in self.names()]
        return sorted(found, key=lambda e: (e.last_activity or 0.0, e.name))

    def new_name(self, prefix: str = "chat") -> str:
        """A name for a new session, from the time: ``chat-20250101-120000`` (``-2``, ``-3``
        ... after it when taken)."""
        base = f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"
        name, n = base, 1
        while name in self:
            n += 1
            name = f"{base}-{n}"
        return check_name(name)

    # --- helpers -------------------------------------------------------------------------

    def _make_folder(self) -> None:
        existed = self.folder.is_dir()
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not existed:
                os.chmod(self.folder, 0o700)  # mkdir's mode is filtered by the umask
        except OSError as exc:
            raise ConfigError(
                f"cannot create the sessions folder {self.folder}: {exc.strerror or exc}. Set "
                f"{ENV_DIR} to a writable folder."
            ) from exc

    @staticmethod
    def _move_media(staged: Path, final: Path) -> None:
        if not staged.is_dir():
            return
        final.mkdir(exist_ok=True)
        for part in staged.iterdir():  # named by content hash: the same bytes, or new ones
            os.replace(part, final / part.name)

    def _unknown(self, name: str) -> str:
        known = self.names()
        if not known:
            return (
                f"no saved session {name!r}: the sessions folder {self.folder} has none yet. "
                "Start one with `llm-magics chat`, or save one with lm.session_store().save(conv)."
            )
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        shown = close or known[-3:]
        label = "closest" if close else "saved, e.g."
        return (
            f"no saved session {name!r} in {self.folder} ({label}: {', '.join(shown)}); "
            "`llm-magics sessions` lists them all"
        )

    def _entry(self, name: str) -> SessionEntry:
        path = self.path(name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            conv = Conversation.from_dict(data)  # media stay on disk: a listing needs none
        except (OSError, ValueError, TypeError, AttributeError, ConfigError) as exc:
            return SessionEntry(name, path, problem=f"cannot read {path}: {exc}")
        used = conv.usage
        models = [t.model for t in conv.turns if t.model]
        stamps = [t.at for t in conv.turns if t.at]
        return SessionEntry(
            name,
            path,
            model=conv.model or (models[-1] if models else ""),
            turns=len(conv),
            calls=used.calls,
            input_tokens=used.input_tokens,
            output_tokens=used.output_tokens,
            cost=used.cost,
            unpriced=used.unpriced,
            last_activity=max(stamps) if stamps else _mtime(path),
        )


def _mtime(path: Path) -> float | None:
    with contextlib.suppress(OSError):
        return path.stat().st_mtime
    return None


def session_store(folder: str | os.PathLike[str] | None = None) -> SessionStore:
    """``lm.session_store()``: the saved sessions the terminal's ``llm-magics`` uses, in
    ``folder``, else ``LLM_MAGICS_SESSIONS_DIR``, else ``sessions`` in the user data
    directory. ``save(conv)``, ``load(name)``, ``open(name)`` (into this kernel's
    sessions), ``names()``, ``entries()``, ``delete(name)``."""
    return SessionStore(folder)
