"""User templates: one TOML file per template in a folder of the user's.

The folder is ``LLM_MAGICS_TEMPLATES_DIR``, else ``templates/`` in the platform's user config
directory (``~/.config/llm_magics/templates`` on Linux). Every ``*.toml`` file in it is one
template::

    # ~/.config/llm_magics/templates/bug_finder.toml
    name = "bug_finder"                       # optional: the file's stem by default
    description = "Find the bugs in a piece of code."
    system = "You are a senior code reviewer. Find the bugs in the code."
    user = '''
    Language: {language}

    ```
    {code}
    ```
    '''
    main = "code"                             # optional: see Template.main
    [defaults]
    language = "Python"

The folder is read when a template is first looked up, and again whenever its files change
(so editing a file in the notebook's folder and rerunning the cell picks the edit up). A file
that cannot be used is reported with its path and the field at fault, and does not keep the
other files from loading (:attr:`FolderScan.problems`).
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..._core.errors import ConfigError
from .template import Template

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport
    import tomli as tomllib

__all__ = ["ENV_DIR", "FIELDS", "FolderScan", "default_directory", "load_file", "scan"]

ENV_DIR = "LLM_MAGICS_TEMPLATES_DIR"

#: The fields a template file may have.
FIELDS = ("name", "description", "system", "user", "main", "defaults")


def default_directory() -> Path:
    """``LLM_MAGICS_TEMPLATES_DIR``, else ``templates`` in the user config directory."""
    configured = os.environ.get(ENV_DIR, "").strip()
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("llm_magics", appauthor=False)) / "templates"


@dataclass(frozen=True)
class FolderScan:
    """What one reading of the folder found: the templates by name, and per file that
    could not be used, why (the message names the file and the field)."""

    directory: Path
    fingerprint: tuple[Any, ...] = ()
    templates: dict[str, Template] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


def fingerprint(directory: Path) -> tuple[Any, ...]:
    """Changes whenever a template file of ``directory`` is added, removed or edited."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return (str(directory),)
    stamp: list[Any] = [str(directory)]
    for entry in entries:
        if entry.name.endswith(".toml"):
            try:
                info = entry.stat()
            except OSError:
                continue
            stamp.append((entry.name, info.st_mtime_ns, info.st_size))
    return tuple(stamp)


def scan(directory: Path) -> FolderScan:
    """Read every ``*.toml`` file of ``directory`` (a missing folder holds no templates)."""
    stamp = fingerprint(directory)
    templates: dict[str, Template] = {}
    problems: dict[str, str] = {}
    where: dict[str, Path] = {}
    paths = sorted(directory.glob("*.toml")) if directory.is_dir() else []
    if directory.exists() and not directory.is_dir():
        problems[str(directory)] = (
            f"the templates folder {directory} is a file; point {ENV_DIR} at a folder of TOML files"
        )
    for path in paths:
        try:
            template = load_file(path)
        except ConfigError as exc:
            problems[str(path)] = exc.message
            continue
        if template.name in templates:
            problems[str(path)] = (
                f"template file {path}: name: {template.name!r} is already the name of "
                f"{where[template.name]}; give one of them another name"
            )
            continue
        templates[template.name] = template
        where[template.name] = path
    return FolderScan(directory, stamp, templates, problems)


def load_file(path: Path) -> Template:
    """The template of one TOML file; a ConfigError naming the file and the field when it
    cannot be used."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"template file {path}: cannot read it: {exc}") from None
    except ValueError as exc:  # TOMLDecodeError, and bytes that are not UTF-8
        raise ConfigError(f"template file {path}: not valid TOML: {exc}") from None
    return _template(path, data)


def _template(path: Path, data: Mapping[str, Any]) -> Template:
    def bad(name: str, what: str) -> ConfigError:
        return ConfigError(f"template file {path}: {name}: {what}")

    for key in data:
        if key not in FIELDS:
            close = difflib.get_close_matches(key, FIELDS, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise bad(key, f"not a template field; {hint}the fields are {', '.join(FIELDS)}")
    text: dict[str, str] = {}
    for key in ("name", "description", "system", "user", "main"):
        if key in data and not isinstance(data[key], str):
            raise bad(key, f"must be a string; got {type(data[key]).__name__}")
        if key in data:
            text[key] = data[key]
    name = text.get("name", path.stem)
    if not name.isidentifier():
        where = "name" if "name" in text else "name (the file's stem, as no name is given)"
        raise bad(where, f"{name!r} is not a Python identifier; use e.g. {_identifier(name)!r}")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, Mapping):
        raise bad("defaults", f"must be a table ([defaults]); got {type(defaults).__name__}")
    if "user" in text and not text["user"].strip():
        raise bad("user", "is empty; leave it out for the default {input}")
    base = _checked(bad, name, text)
    for key in defaults:
        if key not in base.variables:
            raise bad(f"defaults.{key}", base.unknown_variable_message(key, "defaults"))
    main = text.get("main")
    if main is not None and main not in _checked(bad, name, {"user": base.user}).variables:
        raise bad("main", f"{main!r} is not a variable of user ({base.user[:60]!r})")
    return Template(
        name,
        base.system,
        base.user,
        dict(defaults),
        description=base.description,
        main=main,
        source=str(path),
    )


def _checked(bad: Any, name: str, text: Mapping[str, str]) -> Template:
    """The template of the text fields alone; an error there names system or user."""
    try:
        if "system" in text:
            Template(name, system=text["system"])
    except ConfigError as exc:
        raise bad("system", exc.message) from None
    try:
        if "user" in text:
            Template(name, user=text["user"])
    except ConfigError as exc:
        raise bad("user", exc.message) from None
    return Template(
        name,
        text.get("system", ""),
        text.get("user", "{input}"),
        description=text.get("description", ""),
    )


def _identifier(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in text).strip("_")
    return cleaned if cleaned.isidentifier() else f"t_{cleaned}" if cleaned else "my_template"
