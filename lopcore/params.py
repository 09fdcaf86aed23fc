"""Validation of user-facing parameters (notebook `parameters` cells and CLI options).

Every check runs before any work starts, and its error names the parameter, the bad value and
what would be valid.

List parameters (`int_list`, `float_list`, `choice_list`, `seed_list`) also take a list written as
text, which is what papermill's `-p` passes for one: ``"[1, 2]"`` (a Python / JSON list literal of
numbers or strings, read with `ast.literal_eval`, never evaluated), ``"1,2"`` (comma-separated), or
one value such as ``"2"``.
"""

from __future__ import annotations

import ast
import os
from typing import Callable, Iterable


class ParameterError(ValueError):
    """A notebook parameter or CLI option with an invalid value.

    Errors of the checks below also carry `name` (the parameter), `value` (as given), `expected` (what
    would be valid) and `single` (True where one value, not a list, is expected), so a caller such as
    the command line can restate them in its own terms (`--hidden 0` rather than `widths=0`)."""

    def __init__(
        self, message: str, name: str | None = None, value=None, expected: str | None = None, single: bool = False
    ):
        super().__init__(message)
        self.name, self.value, self.expected, self.single = name, value, expected, single


def _bad(name: str, value, expected: str, example: str = "", single: bool = False) -> ParameterError:
    """The one-line error of parameter `name`: `name=value is not valid; expected[, e.g. example]`."""
    return ParameterError(
        f"{name}={value!r} is not valid; {expected}" + (f", e.g. {example}" if example else ""),
        name=name,
        value=value,
        expected=expected,
        single=single,
    )


def _scalar(text: str):
    """One value written as text: an int, else a float, else the text itself (quotes stripped)."""
    text = text.strip()
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _literal_item(value) -> bool:
    return isinstance(value, (int, float, str)) and not isinstance(value, bool)


def as_list(value):
    """A list parameter given as text (papermill's `-p n '[1, 2]'` or `-p n 1,2`, or `"2"`) as the
    list or the one value it writes; anything else unchanged (then validated as usual). Only list
    literals of numbers and strings are read (`ast.literal_eval`, never `eval`); text that is not
    one comes back unchanged, so that the check names it."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text[:1] in "[(":
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return value
        if isinstance(parsed, (list, tuple)) and all(_literal_item(v) for v in parsed):
            return list(parsed)
        return value
    if "," in text:
        return [_scalar(part) for part in text.split(",")]
    return _scalar(text) if text else value


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def choice(name: str, value, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise _bad(name, value, f"choose one of: {', '.join(map(repr, choices))}", single=True)
    return value


def from_env(name: str, default: str, convert: Callable[[str], object], expected: str):
    """Environment variable `name` (`default` when unset) through `convert`, which returns None or
    raises ValueError for a value it does not accept; then a ParameterError saying what to give."""
    raw = os.environ.get(name, default)
    try:
        value = convert(raw)
    except ValueError:
        value = None
    if value is None:
        raise ParameterError(f"{name}={raw!r} is not valid; {expected}")
    return value


def choice_list(name: str, value, choices: Iterable[str]) -> tuple[str, ...]:
    """A choice or a non-empty list of choices, as a tuple without duplicates (in the order given)."""
    choices = tuple(choices)
    given = value if isinstance(value, str) and value in choices else as_list(value)  # a choice may hold a comma
    values = [given] if isinstance(given, str) else given
    if (
        not isinstance(values, (list, tuple))
        or not values
        or not all(isinstance(v, str) and v in choices for v in values)
    ):
        raise _bad(name, value, f"give one or a list of: {', '.join(map(repr, choices))}")
    return tuple(dict.fromkeys(values))


def int_at_least(name: str, value, minimum: int) -> int:
    if not _is_int(value) or value < minimum:
        raise _bad(name, value, f"it must be an integer >= {minimum}", single=True)
    return value


def int_list(name: str, value, minimum: int) -> tuple[int, ...]:
    """An int or a non-empty list of ints, each >= minimum, as a tuple without duplicates (also
    written as text: "[1, 2]", "1,2" or "2", see `as_list`)."""
    given = as_list(value)
    values = [given] if _is_int(given) else given
    if not isinstance(values, (list, tuple)) or not values or not all(_is_int(v) and v >= minimum for v in values):
        raise _bad(
            name,
            value,
            f"give an integer >= {minimum} or a non-empty list of them",
            f"{name}=[{minimum}, {minimum + 1}]",
        )
    return tuple(dict.fromkeys(values))


def boolean(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise _bad(name, value, "choose True or False", single=True)
    return value


def float_list(name: str, value, low: float, high: float) -> tuple[float, ...]:
    """A number or a non-empty list of numbers, each in [low, high), as a tuple without duplicates
    (also written as text: "[0.1, 0.2]", "0.1,0.2" or "0.1", see `as_list`)."""
    given = as_list(value)
    values = [given] if isinstance(given, (int, float)) and not isinstance(given, bool) else given
    ok = (
        isinstance(values, (list, tuple))
        and values
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v < high for v in values)
    )
    if not ok:
        raise _bad(
            name, value, f"give a number in [{low:g}, {high:g}) or a non-empty list of them", f"{name}=[1e-4, 1e-3]"
        )
    return tuple(dict.fromkeys(float(v) for v in values))


def seed_list(value) -> tuple[int, ...]:
    """`seeds` is a count (3 -> seeds 0, 1, 2) or an explicit list of non-negative ints (as text too:
    "3" is a count, "[0, 4]" or "0,4" a list)."""
    given = as_list(value)
    if _is_int(given):
        if given < 1:
            raise _bad("seeds", value, "it must be an integer >= 1", single=True)
        return tuple(range(given))
    try:
        return int_list("seeds", given, 0)
    except ParameterError:
        raise _bad("seeds", value, "give a count >= 1 or a non-empty list of seeds >= 0", "seeds=[0, 1]") from None


def device_name(value) -> str:
    from .device import resolve_device  # late: it imports torch, which parsing options does not need

    if not isinstance(value, str):
        raise ParameterError(f"device={value!r} is not valid; choose 'auto', 'cpu', 'cuda' or 'cuda:N'")
    try:
        resolve_device(value)
    except ValueError as err:
        raise ParameterError(f"device: {err}") from None
    return value
