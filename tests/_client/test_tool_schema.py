"""Tool schemas: from type hints (Optional, Literal, enums, lists, nested pydantic models, with
$ref inlined) and per-argument descriptions from Google, NumPy and reST docstrings; explicit
lm.Tool objects; mistakes refused at definition time."""

from __future__ import annotations

import enum
from typing import Literal

import pytest
from pydantic import BaseModel

import llm_magics as lm
from llm_magics._client.tool_schema import to_tool_specs


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


class Place(BaseModel):
    city: str
    country: str | None = None


def forecast(
    place: Place,
    days: list[int],
    unit: Unit = Unit.CELSIUS,
    detail: Literal["short", "long"] = "short",
    note: str | None = None,
) -> str:
    """Forecast the weather.

    Args:
        place: Where to forecast.
        days: Which days ahead, 0 being today.
        unit: Temperature unit.
        detail: How much to say.
        note: Anything to mention.
    """
    return "sunny"


def test_type_hints_become_a_schema_with_nested_models_inlined() -> None:
    (spec,) = to_tool_specs([forecast]) or []
    props = spec.parameters["properties"]
    assert "$defs" not in spec.parameters and "$ref" not in str(spec.parameters)
    assert props["place"]["type"] == "object" and "city" in props["place"]["properties"]
    assert props["days"]["type"] == "array" and props["days"]["items"] == {"type": "integer"}
    assert props["unit"]["enum"] == ["celsius", "fahrenheit"]
    assert props["detail"]["enum"] == ["short", "long"]
    assert {"type": "null"} in props["note"]["anyOf"]
    assert spec.parameters["required"] == ["place", "days"]
    assert spec.description == "Forecast the weather."


def test_google_docstring_args_describe_each_argument() -> None:
    (spec,) = to_tool_specs([forecast]) or []
    props = spec.parameters["properties"]
    assert props["days"]["description"] == "Which days ahead, 0 being today."
    assert props["place"]["description"] == "Where to forecast."


def numpy_style(city: str, days: int = 1) -> str:
    """Forecast, NumPy style.

    Parameters
    ----------
    city : str
        The city's name.
    days : int
        How many days.
    """
    return city


def rest_style(city: str) -> str:
    """Forecast, reST style.

    :param city: The city's name.
    """
    return city


@pytest.mark.parametrize("fn", [numpy_style, rest_style])
def test_numpy_and_rest_docstrings_describe_arguments_too(fn: object) -> None:
    (spec,) = to_tool_specs([fn]) or []
    assert spec.parameters["properties"]["city"]["description"] == "The city's name."
    assert spec.description.startswith("Forecast,")


def test_an_explicit_tool_carries_its_own_schema_and_function() -> None:
    t = lm.Tool("lookup", "Look a word up.", {"type": "object",
                "properties": {"word": {"type": "string"}}}, lambda word: word.upper())  # fmt: skip
    result = lm.ToolRegistry([t]).execute("lookup", {"word": "hi"})
    assert result.content == "HI"
    with pytest.raises(lm.ConfigError, match="letters, digits"):
        lm.Tool("bad name!", "x")
    with pytest.raises(lm.ConfigError, match="object schema"):
        lm.Tool("t", "x", {"type": "string"})


def test_the_decorator_takes_a_name_and_description() -> None:
    @lm.tool(name="weather_now", description="Now.")
    def weather(city: str) -> str:
        """Ignored summary."""
        return city

    spec = weather.__llm_tool__  # type: ignore[attr-defined]
    assert (spec.name, spec.description) == ("weather_now", "Now.")


def test_two_tools_of_one_name_are_refused() -> None:
    with pytest.raises(lm.ConfigError, match="two tools are named 'numpy_style'"):
        to_tool_specs([numpy_style, numpy_style])


def test_arguments_are_checked_and_coerced_by_the_schema_before_the_tool_runs() -> None:
    registry = lm.ToolRegistry([forecast])
    ok = registry.execute("forecast", {"place": {"city": "Oslo"}, "days": ["1", 2]})
    assert ok.ok and ok.content == "sunny"
    bad = registry.execute("forecast", {"place": {"town": "Oslo"}, "days": [1], "extra": 1})
    assert bad.error is not None and "place.city" in bad.error and "extra" in bad.error
