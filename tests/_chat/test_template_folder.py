"""User templates: TOML files in LLM_MAGICS_TEMPLATES_DIR (default: the user config dir),
read on first lookup and again when they change; a bad file is an error naming the file and
the field, and the other files still load."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
import pytest

import llm_magics as lm
from llm_magics._chat.templates import TemplateLibrary
from llm_magics._chat.templates.folder import default_directory, load_file

BUG_FINDER = '''
name = "bug_finder"
description = "Find the bugs in a piece of code."
system = "You are a senior code reviewer. Find the bugs in the code."
user = """
Language: {language}

```
{code}
```"""
main = "code"

[defaults]
language = "Python"
'''


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "my-templates"
    path.mkdir()
    monkeypatch.setenv("LLM_MAGICS_TEMPLATES_DIR", str(path))
    return path


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_folder_defaults_to_templates_in_the_user_config_dir(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LLM_MAGICS_TEMPLATES_DIR")
    expected = Path(platformdirs.user_config_dir("llm_magics", appauthor=False)) / "templates"
    assert default_directory() == expected
    monkeypatch.setenv("LLM_MAGICS_TEMPLATES_DIR", "~/tpl")
    assert default_directory() == Path("~/tpl").expanduser()


def test_a_toml_file_is_a_template_with_every_field(folder: Path) -> None:
    path = write(folder, "bug_finder.toml", BUG_FINDER)
    t = lm.templates.bug_finder
    assert t.variables == ("language", "code") and t.main == "code"
    assert t.defaults == {"language": "Python"}
    assert t.description == "Find the bugs in a piece of code."
    assert t.source == str(path)
    assert lm.templates.names()[-1] == "bug_finder"
    system, user = t.render(code="def add(a, b): return a - b")
    assert system.text == "You are a senior code reviewer. Find the bugs in the code."
    assert user.text == "Language: Python\n\n```\ndef add(a, b): return a - b\n```"


def test_the_name_defaults_to_the_files_stem_and_user_to_input(folder: Path) -> None:
    write(folder, "pirate.toml", 'system = "Talk like a pirate."\n')
    t = lm.templates["pirate"]
    assert t.variables == ("input",)
    assert [m.text for m in t.render(input="Hello")] == ["Talk like a pirate.", "Hello"]


def test_the_folder_is_read_at_the_first_lookup_and_again_when_a_file_changes(
    folder: Path,
) -> None:
    library = TemplateLibrary()
    path = write(folder, "greet.toml", 'user = "Hello {who}"\n')  # after the library exists
    assert library["greet"].variables == ("who",)
    path.write_text('user = "Good morning {who}, {when}"\n', encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert library["greet"].variables == ("who", "when")
    path.unlink()
    assert "greet" not in library


def test_a_user_template_named_like_a_built_in_takes_its_place(folder: Path) -> None:
    write(folder, "translate.toml", 'system = "Translate to {language}."\nuser = "{text}"\n')
    assert lm.templates.translate.source.endswith("translate.toml")
    assert lm.templates.names().count("translate") == 1


@pytest.mark.parametrize(
    ("text", "field", "says"),
    [
        ('name = "x"\nuser = "unterminated\n', "not valid TOML", "line 2"),
        ('sytem = "Be brief."\n', "sytem:", "did you mean system?"),
        ("user = 42\n", "user:", "must be a string; got int"),
        ('name = "my template"\n', "name:", "not a Python identifier; use e.g. 'my_template'"),
        ('user = "{temperature}"\n', "user:", "option of chat()"),
        ('system = "{schema}"\n', "system:", "option of chat()"),
        ('user = "{x}"\n[defaults]\ny = 1\n', "defaults.y:", "has no variable 'y'"),
        ('user = "{x}"\ndefaults = 3\n', "defaults:", "must be a table"),
        ('system = "{a}"\nuser = "{x}"\nmain = "a"\n', "main:", "'a' is not a variable of user"),
        ('user = "  "\n', "user:", "is empty"),
    ],
)
def test_a_bad_file_names_the_file_and_the_field_and_does_not_hide_the_others(
    folder: Path, text: str, field: str, says: str
) -> None:
    bad = write(folder, "broken.toml", text)
    write(folder, "bug_finder.toml", BUG_FINDER)
    assert lm.templates.bug_finder.main == "code"  # the good file still loads
    (problem,) = lm.templates.problems().values()
    assert problem.startswith(f"template file {bad}: {field}"), problem
    assert says in problem, problem
    with pytest.raises(lm.ConfigError) as info:
        load_file(bad)
    assert str(info.value) == problem


def test_looking_up_a_broken_template_raises_its_files_error(folder: Path) -> None:
    bad = write(folder, "broken.toml", "user = 42\n")
    with pytest.raises(
        lm.ConfigError, match=f"template 'broken' could not be loaded: template file {bad}: user:"
    ):
        lm.templates.broken  # noqa: B018
    with pytest.raises(KeyError, match="1 template file\\(s\\) could not be read"):
        lm.templates["brokn"]


def test_two_files_with_one_name_keep_the_first_and_name_both(folder: Path) -> None:
    first = write(folder, "a.toml", 'name = "same"\nuser = "A {x}"\n')
    second = write(folder, "b.toml", 'name = "same"\nuser = "B {x}"\n')
    assert lm.templates.same.user == "A {x}"
    assert lm.templates.problems()[str(second)] == (
        f"template file {second}: name: 'same' is already the name of {first}; give one of "
        "them another name"
    )


def test_a_missing_folder_holds_no_templates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_MAGICS_TEMPLATES_DIR", str(tmp_path / "nowhere"))
    assert len(lm.templates) == 16 and lm.templates.problems() == {}


def test_other_files_in_the_folder_are_ignored(folder: Path) -> None:
    write(folder, "notes.txt", "not a template")
    write(folder, "ok.toml", 'user = "{x}"\n')
    assert lm.templates.names()[16:] == ["ok"] and lm.templates.problems() == {}


def test_a_templates_folder_that_is_a_file_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "not-a-folder", "x")
    monkeypatch.setenv("LLM_MAGICS_TEMPLATES_DIR", str(path))
    assert lm.templates.problems() == {
        str(path): f"the templates folder {path} is a file; point LLM_MAGICS_TEMPLATES_DIR at a "
        "folder of TOML files"
    }
    assert len(lm.templates) == 16
