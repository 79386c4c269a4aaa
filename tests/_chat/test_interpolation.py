"""Prompt interpolation for %%llm: str.format-style placeholders resolved from the notebook's
namespace only, read once, and never tripped up by braces that are not placeholders."""

from __future__ import annotations

import io
import subprocess
import sys
import wave
from dataclasses import dataclass
from typing import Any

import pytest

from llm_magics._chat.interpolation import (
    ErrorLog,
    ErrorRecord,
    PromptError,
    UnknownNameError,
    code_spans,
    render,
    resolve,
    to_media_part,
)
from llm_magics._core.types import MediaPart


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (2, 2), "red").save(buf, format="PNG")
    return buf.getvalue()


def _wav() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 80)
    return buf.getvalue()


PNG = _png()
WAV = _wav()


@dataclass
class Row:
    title: str
    tags: list[str]


def text(template: str, **ns: Any) -> str:
    parts = render(template, ns)
    assert all(isinstance(p, str) for p in parts), parts
    return "".join(p for p in parts if isinstance(p, str))


# --- placeholders ----------------------------------------------------------------------------


def test_names_attributes_and_items_are_filled_from_the_namespace() -> None:
    ns = {"name": "Ada", "row": Row("Notes", ["x", "y"]), "cfg": {"model": "m1", "0": "zero"}}
    assert text("Hi {name}: {row.title} / {row.tags[1]} / {cfg[model]}", **ns) == (
        "Hi Ada: Notes / y / m1"
    )


def test_item_keys_may_be_quoted_like_in_an_fstring() -> None:
    cfg = {"model": "m1", "a b": 2}
    assert text("{cfg['model']} {cfg[\"model\"]} {cfg[a b]}", cfg=cfg) == "m1 m1 2"


def test_integer_keys_index_sequences_and_may_be_negative() -> None:
    assert text("{xs[0]} {xs[-1]} {xs[ -2 ]}", xs=[10, 20, 30]) == "10 30 20"


def test_conversions_and_format_specs_follow_str_format() -> None:
    assert text("{x:.2f}|{s!r}|{s!r:>6}|{n:,}|{s!a}", x=3.14159, s="é", n=1234567) == (
        "3.14|'é'|   'é'|1,234,567|'\\xe9'"
    )


def test_a_bad_format_spec_names_the_placeholder() -> None:
    with pytest.raises(PromptError, match=r"\{s:d\}.*str"):
        render("{s:d}", {"s": "text"})


# --- braces that are not placeholders --------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('Return {"a": 1, "b": [1, 2]} as JSON', 'Return {"a": 1, "b": [1, 2]} as JSON'),
        ("int main() { return 0; }", "int main() { return 0; }"),
        ("a lone { brace", "a lone { brace"),
        ("a lone } brace", "a lone } brace"),
        ("}{ reversed", "}{ reversed"),
        ("empty {} pair", "empty {} pair"),
        ("positional {0} and {1:>3}", "positional {0} and {1:>3}"),
        ("spaces { x } inside", "spaces { x } inside"),
        ("js {a: 1} object", "js {a: 1} object"),
        ("set {1, 2, 3}", "set {1, 2, 3}"),
        ("{-x} {x-y} {x y} {x.} {.x} {x[} {x]}", "{-x} {x-y} {x y} {x.} {.x} {x[} {x]}"),
        ("nested {a{b}c}", "nested {a3c}"),
        ("}}}", "}}}"),
        ("{{{", "{{{"),
        ("{{{x}}}", "{{x}}"),
        ("{", "{"),
        ("}", "}"),
        ("", ""),
    ],
)
def test_braces_that_are_not_placeholders_never_crash(template: str, expected: str) -> None:
    assert text(template, x=1, a=2, b=3) == expected


def test_non_placeholders_are_kept_verbatim() -> None:
    for s in ['{"a": 1}', "int f() { return x; }", "{ x }", "{a: 1}", "{}", "{0}", "x } y { z"]:
        assert text(s) == s


def test_a_placeholder_in_doubled_braces_is_the_escape() -> None:
    assert text("{{x}} and {{cfg[key]:>3}} and {{x!r}}", x=5) == "{x} and {cfg[key]:>3} and {x!r}"
    assert text("{{ {x} }}", x=5) == "{{ 5 }}"


def test_other_doubled_braces_are_kept_as_written() -> None:
    for s in ['{"a": {"b": {"c": 1}}}', "{{ jinja }}", "{{}}", "}}{{", "style={{color: 1}}"]:
        assert text(s, x=1) == s


def test_braces_inside_a_value_are_never_interpreted() -> None:
    code = 'def f():\n    return {"k": "{secret}"}  # {x} {{y}}'
    assert text("Review:\n{code}\nthanks {x}", code=code, x="X", secret="S") == (
        f"Review:\n{code}\nthanks X"
    )


def test_formatting_happens_once_even_when_a_value_looks_like_a_placeholder() -> None:
    assert text("{a} {b}", a="{b}", b="{a}") == "{b} {a}"


# --- unknown names ---------------------------------------------------------------------------


def test_an_unknown_name_is_an_error_naming_it_and_the_escape() -> None:
    with pytest.raises(UnknownNameError) as info:
        render("Summarise {notes} please", {"note": 1})
    assert info.value.name == "notes"
    message = str(info.value)
    assert "'notes'" in message and "{{notes}}" in message and "--raw" in message


def test_an_unknown_root_is_named_even_with_attribute_steps() -> None:
    with pytest.raises(UnknownNameError, match="'df'") as info:
        render("{df.columns[0]}", {})
    assert info.value.name == "df"


def test_unknown_names_inside_fenced_code_stay_as_written() -> None:
    prompt = 'Why does this fail?\n```python\nprint(f"{value!r:>10} {d[k]}")\n```\nThanks {me}'
    assert text(prompt, me="Ada") == prompt.replace("{me}", "Ada")


def test_known_names_inside_fenced_code_are_still_filled() -> None:
    prompt = "Explain:\n```\n{code}\n```"
    assert text(prompt, code="x = {1: 2}") == "Explain:\n```\nx = {1: 2}\n```"


def test_tilde_fences_and_unterminated_fences_count_as_code() -> None:
    assert text("~~~\n{a}\n~~~ then ```\n{b}") == "~~~\n{a}\n~~~ then ```\n{b}"
    with pytest.raises(UnknownNameError, match="'c'"):
        render("~~~\n{a}\n~~~\n{c}", {})


def test_unknown_names_inside_inline_code_and_math_stay_as_written() -> None:
    prompt = r"What does `f'{x}'` print, and is $\frac{a}{b}$ equal to $$\sqrt{n}$$?"
    assert text(prompt) == prompt


def test_code_spans_finds_fences_inline_code_and_math_in_order() -> None:
    s = "a `x` b\n```\ncode\n```\nc $m$ d"
    spans = code_spans(s)
    assert [s[a:b] for a, b in spans] == ["`x`", "```\ncode\n```", "$m$"]


# --- failures of steps -----------------------------------------------------------------------


def test_a_missing_attribute_or_item_is_a_clear_error() -> None:
    with pytest.raises(PromptError, match=r"\{row\.titel\}.*AttributeError"):
        render("{row.titel}", {"row": Row("t", [])})
    with pytest.raises(PromptError, match=r"\{cfg\[modle\]\}.*no item \[modle\].*KeyError"):
        render("{cfg[modle]}", {"cfg": {"model": 1}})
    with pytest.raises(PromptError, match="IndexError"):
        render("{xs[5]}", {"xs": [1]})


def test_dunder_attributes_are_refused() -> None:
    with pytest.raises(PromptError, match="dunder"):
        render("{f.__globals__}", {"f": test_dunder_attributes_are_refused})


def test_resolve_never_evaluates() -> None:
    calls: list[str] = []
    ns = {"f": lambda: calls.append("called")}
    with pytest.raises(PromptError, match="not a variable reference"):
        resolve("f()", ns)
    with pytest.raises(PromptError, match="not a variable reference"):
        resolve("__import__('os').system('true')", ns)
    assert calls == []


def test_extras_are_consulted_after_the_namespace() -> None:
    assert resolve("Err", {}, {"Err": "log"}) == "log"
    assert resolve("Err", {"Err": "mine"}, {"Err": "log"}) == "mine"


# --- media values ----------------------------------------------------------------------------


def test_a_media_value_splits_the_prompt_into_parts_in_order() -> None:
    img = MediaPart("image", "image/png", data=PNG)
    parts = render("Compare {a} with {b}, then say {word}.", {"a": img, "b": img, "word": "hi"})
    assert parts == ["Compare ", img, " with ", img, ", then say hi."]


def test_objects_with_to_media_part_are_media() -> None:
    class Pic:
        def to_media_part(self) -> MediaPart:
            return MediaPart("image", "image/png", data=PNG)

    parts = render("{p}", {"p": Pic()})
    assert len(parts) == 1 and isinstance(parts[0], MediaPart)


def test_a_media_value_with_a_format_spec_is_text() -> None:
    img = MediaPart("image", "image/png", data=PNG)
    assert render("{img!r}", {"img": img}) == [repr(img)]


def test_to_media_part_with_a_kind_takes_paths_and_bytes_and_refuses_other_things(
    tmp_path: Any,
) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(WAV)
    part = to_media_part(str(path), "audio")
    assert part is not None and (part.kind, part.mime_type) == ("audio", "audio/wav")
    png = to_media_part(PNG, "image")
    assert png is not None and png.mime_type == "image/png"
    with pytest.raises(PromptError, match="audio"):
        to_media_part(PNG, "audio")
    with pytest.raises(PromptError, match="dict"):
        to_media_part({"not": "media"}, "image")
    assert to_media_part("just text") is None


def test_a_pil_image_in_the_prompt_becomes_an_image_part() -> None:
    pil = pytest.importorskip("PIL.Image")
    parts = render("Describe {im}", {"im": pil.new("RGB", (4, 4), "red")})
    assert parts[0] == "Describe " and isinstance(parts[1], MediaPart)
    assert parts[1].kind == "image"


# --- the error log behind {Err[-1]} ----------------------------------------------------------


def _raise_in_user_code() -> None:
    values = {"a": 1}
    values["b"]


def test_error_records_give_a_readable_traceback_with_the_failing_line() -> None:
    try:
        _raise_in_user_code()
    except KeyError as exc:
        record = ErrorRecord.from_exception(exc, execution_count=4, cell="x")
    assert (record.type, record.execution_count) == ("KeyError", 4)
    assert 'values["b"]' in str(record)
    assert str(record).endswith("KeyError: 'b'")
    assert "\x1b[" not in str(record)


def test_error_log_indexes_by_recency_and_by_cell_number() -> None:
    log = ErrorLog()
    with pytest.raises(IndexError, match="no cell has failed"):
        log[-1]
    for n, exc in [(2, ValueError("two")), (5, ZeroDivisionError("five"))]:
        log.record(ErrorRecord.from_exception(exc, n))
    assert log[-1].message == "five" and log[-2].message == "two"
    assert log[2].type == "ValueError"
    with pytest.raises(KeyError, match="cell 3 did not fail"):
        log[3]
    with pytest.raises(IndexError, match="only 2"):
        log[-3]
    assert text("{Err[-1]}", Err=log) == "ZeroDivisionError: five"


def test_error_log_keeps_only_the_most_recent_errors() -> None:
    log = ErrorLog(limit=3)
    for n in range(10):
        log.record(ErrorRecord.from_exception(RuntimeError(str(n)), n))
    assert [r.message for r in log] == ["7", "8", "9"]


def test_the_prompt_module_does_not_import_ipython() -> None:
    code = "import sys, llm_magics._chat.interpolation; print('IPython' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
