"""Validation of user-facing parameters (notebook `parameters` cells and CLI options).

Every check runs before any work starts, and its error names the parameter, the bad value and
what would be valid.
"""
from __future__ import annotations

import os
from typing import Callable, Iterable


class ParameterError(ValueError):
    """A notebook parameter or CLI option with an invalid value."""


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def choice(name: str, value, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ParameterError(f"{name}={value!r} is not valid; choose one of: {', '.join(map(repr, choices))}")
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
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, (list, tuple)) or not values or not all(isinstance(v, str) and v in choices
                                                                          for v in values):
        raise ParameterError(f"{name}={value!r} is not valid; give one or a list of: {', '.join(map(repr, choices))}")
    return tuple(dict.fromkeys(values))


def int_at_least(name: str, value, minimum: int) -> int:
    if not _is_int(value) or value < minimum:
        raise ParameterError(f"{name}={value!r} is not valid; it must be an integer >= {minimum}")
    return value


def int_list(name: str, value, minimum: int) -> tuple[int, ...]:
    """An int or a non-empty list of ints, each >= minimum, as a tuple without duplicates."""
    values = [value] if _is_int(value) else value
    if not isinstance(values, (list, tuple)) or not values or not all(_is_int(v) and v >= minimum for v in values):
        raise ParameterError(f"{name}={value!r} is not valid; give an integer >= {minimum} "
                             f"or a non-empty list of them, e.g. {name}=[1, 2]")
    return tuple(dict.fromkeys(values))


def boolean(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ParameterError(f"{name}={value!r} is not valid; choose True or False")
    return value


def float_list(name: str, value, low: float, high: float) -> tuple[float, ...]:
    """A number or a non-empty list of numbers, each in [low, high), as a tuple without duplicates."""
    values = [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    ok = isinstance(values, (list, tuple)) and values and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v < high for v in values)
    if not ok:
        raise ParameterError(f"{name}={value!r} is not valid; give a number in [{low:g}, {high:g}) "
                             f"or a non-empty list of them, e.g. {name}=[1e-4, 1e-3]")
    return tuple(dict.fromkeys(float(v) for v in values))


def seed_list(value) -> tuple[int, ...]:
    """`seeds` is a count (3 -> seeds 0, 1, 2) or an explicit list of non-negative ints."""
    if _is_int(value):
        return tuple(range(int_at_least("seeds", value, 1)))
    return int_list("seeds", value, 0)


def device_name(value) -> str:
    from .device import resolve_device  # late: it imports torch, which parsing options does not need
    if not isinstance(value, str):
        raise ParameterError(f"device={value!r} is not valid; choose 'auto', 'cpu', 'cuda' or 'cuda:N'")
    try:
        resolve_device(value)
    except ValueError as err:
        raise ParameterError(f"device: {err}") from None
    return value
