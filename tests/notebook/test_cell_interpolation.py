"""Prompt interpolation in real cells: notebook variables, In/Out, recent errors recorded by a
post_run_cell callback (no session-wide exception hook), and braces from pasted code or from
values that must reach the model untouched."""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from tests.magics_helpers import FakeOpenAI, fake, ip, last_user_text, magics_of

__all__ = ["fake", "ip"]  # fixtures


def sent(shell: Any, fake: FakeOpenAI, prompt: str, options: str = "") -> str:
    with capture_output():
        shell.run_cell_magic("llm", options, prompt)
    return last_user_text(fake.bodies[-1])


def test_variables_attributes_and_items_are_filled_in(ip: Any, fake: FakeOpenAI) -> None:
    ip.run_cell(
        "import types\nbook = types.SimpleNamespace(title='Dune', tags=['sf', 'classic'])\nprices = {'eur': 9.5}"
    )
    text = sent(
        ip, fake, "Is {book.title} ({book.tags[0]}) worth {prices[eur]:.2f} EUR? {prices['eur']!r}"
    )
    assert text == "Is Dune (sf) worth 9.50 EUR? 9.5"


def test_braces_in_a_value_reach_the_model_untouched(ip: Any, fake: FakeOpenAI) -> None:
    ip.user_ns["code"] = 'print(f"{name}")  # {{not}} {0} {"k": {}}'
    assert (
        sent(ip, fake, "Explain:\n{code}") == 'Explain:\nprint(f"{name}")  # {{not}} {0} {"k": {}}'
    )


def test_pasted_code_with_dicts_sets_and_c_blocks_is_sent_as_written(
    ip: Any, fake: FakeOpenAI
) -> None:
    prompt = (
        'Why is config = {"a": 1, "b": {2, 3}} slow?\n'
        "int main(void) { if (x) { return 1; } }\n"
        "```python\nprint(f'{value:>{width}}')\n```\n"
        "and `{unknown}` in inline code, and {{escaped}}."
    )
    expected = prompt.replace("{{escaped}}", "{escaped}")
    assert sent(ip, fake, prompt) == expected


def test_an_unknown_variable_is_a_usage_error_naming_it(ip: Any, fake: FakeOpenAI) -> None:
    with pytest.raises(UsageError, match=r"\{reveiw\} in the prompt: no variable named 'reveiw'"):
        ip.run_cell_magic("llm", "", "Classify {reveiw}")
    with capture_output() as captured:
        result = ip.run_cell("%%llm\nClassify {reveiw}\n")
    assert isinstance(result.error_in_exec, UsageError)
    assert captured.stderr.startswith("UsageError: {reveiw} in the prompt")
    assert fake.bodies == []


def test_a_failing_attribute_is_a_usage_error_naming_the_placeholder(
    ip: Any, fake: FakeOpenAI
) -> None:
    ip.user_ns["n"] = 5
    with pytest.raises(UsageError, match=r"\{n\.real\.nope\}: AttributeError"):
        ip.run_cell_magic("llm", "", "{n.real.nope}")


def test_in_and_out_refer_to_earlier_cells(ip: Any, fake: FakeOpenAI) -> None:
    ip.run_cell("x = 20", store_history=True)
    first = ip.execution_count - 1
    ip.run_cell("x * 2 + 2", store_history=True)
    second = ip.execution_count - 1
    text = sent(ip, fake, f"Cell {{In[{first}]}} then {{In[{second}]}} gave {{Out[{second}]}}")
    assert text == "Cell x = 20 then x * 2 + 2 gave 42"
    with pytest.raises(UsageError, match=rf"Out\[{first}\]"):
        ip.run_cell_magic("llm", "", f"{{Out[{first}]}}")


def test_err_gives_a_readable_traceback_of_the_latest_failure(ip: Any, fake: FakeOpenAI) -> None:
    with capture_output():
        ip.run_cell(
            "def load(d):\n    return d['missing']\n\nload({'present': 1})", store_history=True
        )
    failed = ip.execution_count - 1
    text = sent(ip, fake, "Fix this error:\n{Err[-1]}")
    assert text.startswith("Fix this error:\nTraceback (most recent call last):")
    assert "return d['missing']" in text and text.endswith("KeyError: 'missing'")
    assert "\x1b[" not in text, "no terminal colours"
    assert "interactiveshell.py" not in text, "no IPython machinery frames"
    assert sent(ip, fake, f"{{Err[{failed}]}}") == text.removeprefix("Fix this error:\n")
    assert magics_of(ip).errors[-1].cell.startswith("def load(d):")


def test_err_of_a_failure_inside_the_package_shows_the_users_frames_only(
    ip: Any, fake: FakeOpenAI
) -> None:
    with capture_output():
        ip.run_cell("import llm_magics as lm\nlm.client('nowhere:model')", store_history=True)
    text = sent(ip, fake, "{Err[-1]}")
    assert "lm.client('nowhere:model')" in text and "unknown provider 'nowhere'" in text
    assert "llm_magics/" not in text.replace("\\", "/"), "no frames of this package"


def test_err_counts_back_through_several_failures(ip: Any, fake: FakeOpenAI) -> None:
    with capture_output():
        ip.run_cell("1 / 0")
        ip.run_cell("int('x')")
    assert sent(ip, fake, "{Err[-2]}").endswith("ZeroDivisionError: division by zero")
    assert sent(ip, fake, "{Err[-1]}").endswith(
        "ValueError: invalid literal for int() with base 10: 'x'"
    )


def test_err_records_syntax_errors_and_failed_llm_cells_too(ip: Any, fake: FakeOpenAI) -> None:
    with capture_output():
        ip.run_cell("def broken(:\n    pass")
    assert "SyntaxError" in sent(ip, fake, "{Err[-1]}")
    fake.status = 400
    with capture_output():
        ip.run_cell("%%llm --no-cache\nhi\n")
    assert magics_of(ip).errors[-1].type == "BadRequestError"


def test_err_before_any_failure_is_a_usage_error(ip: Any, fake: FakeOpenAI) -> None:
    with pytest.raises(UsageError, match="no cell has failed yet"):
        ip.run_cell_magic("llm", "", "{Err[-1]}")


def test_errors_are_recorded_without_a_custom_exception_hook(ip: Any) -> None:
    assert ip.custom_exceptions == ()
    callbacks = ip.events.callbacks["post_run_cell"]
    assert magics_of(ip)._after_cell in callbacks
    ip.extension_manager.unload_extension("llm_magics")
    assert not any(
        getattr(c, "__self__", None).__class__.__name__ == "LLMMagics" for c in callbacks
    )
    ip.extension_manager.load_extension("llm_magics")


def test_a_user_variable_named_err_wins_over_the_error_log(ip: Any, fake: FakeOpenAI) -> None:
    ip.user_ns["Err"] = ["mine"]
    assert sent(ip, fake, "{Err[-1]}") == "mine"
