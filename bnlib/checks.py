"""Up-front checks of user-facing values, so a bad one fails at once with a message that says what to do.

Every error names the parameter, the value it got and what is allowed. A wrong value must never
train for an hour and then fail, nor train and be shown as a result ("diverged" with lr=nan).
The bottom layer: it imports nothing of bnlib, so every module can use it (each chapter's own parameter checks
are with the chapter registry, `bnlib.book`; train's argument check is with train).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

SEED_MAX = 2**32 - 1
WIDTH_MAX = 64.0  # VGG channel multiplier: 64x VGG-16 is already 32,768 channels a layer


class BadParameter(ValueError, TypeError):
    """A value outside what a parameter allows (both a ValueError and a TypeError, so either catch works)."""


def _got(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def is_int(value: Any) -> bool:
    """True for ints (numpy's included), False for booleans: `True` is not a step count."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int within [low, high]; booleans and floats (even 3.0) are refused."""
    if not is_int(value):
        raise BadParameter(f"{name} must be an int{_range(low, high)}, got {_got(value)}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise BadParameter(f"{name} must be an int{_range(low, high)}, got {value!r}")
    return int(value)


def _range(low: float | None, high: float | None, low_open: bool = False) -> str:
    lo, hi = _num(low), _num(high)
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{lo}, {hi}]"
    if low is not None:
        return f" {'>' if low_open else '>='} {lo}"
    return f" <= {hi}" if high is not None else ""


def _num(value: float | None) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}" if value is not None else ""


def check_number(name: str, value: Any, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """`value` as a finite float within the bounds (open bounds exclude the end); no booleans, no NaN/inf."""
    what = f"a finite number{_range(low, high, low_open)}"
    if high_open and high is not None:
        what = what.replace(f"{_num(high)}]", f"{_num(high)})")
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise BadParameter(f"{name} must be {what}, got {_got(value)}")
    value = float(value)
    bad = not math.isfinite(value)
    bad |= low is not None and (value <= low if low_open else value < low)
    bad |= high is not None and (value >= high if high_open else value > high)
    if bad:
        raise BadParameter(f"{name} must be {what}, got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadParameter(f"{name} must be True or False, got {_got(value)}")
    return value


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    if not isinstance(value, str) or value not in choices:
        raise BadParameter(f"unknown {name} {_got(value)}; allowed: {list(choices)}")
    return value


def check_seed(value: Any, name: str = "seed") -> int:
    return check_int(name, value, 0, SEED_MAX)


def check_seeds(name: str, value: Any) -> tuple[int, ...]:
    """A non-empty list or tuple of distinct seeds (each an int in [0, SEED_MAX])."""
    values = check_sequence(name, value)
    seeds = tuple(check_seed(v, f"{name}[{i}]") for i, v in enumerate(values))
    if len(set(seeds)) != len(seeds):
        raise BadParameter(f"{name} must not repeat a seed, got {value!r}")
    return seeds


def check_optional_int(name: str, value: Any, low: int = 1) -> int | None:
    """None (meaning "all" or "default") or an int >= low."""
    if value is None:
        return None
    if not is_int(value) or value < low:
        raise BadParameter(f"{name} must be None or an int >= {low}, got {_got(value)}")
    return int(value)


def check_sequence(name: str, values: Any, count: int | None = None) -> tuple[Any, ...]:
    """A non-empty list or tuple (of exactly `count` items when given); a lone string or number is refused."""
    what = f"{count} values" if count else "one or more values"
    if not isinstance(values, (list, tuple)) or not values or (count is not None and len(values) != count):
        raise BadParameter(f"{name} must be a list or tuple of {what}, got {_got(values)}")
    return tuple(values)


def check_rates(name: str, values: Any, count: int | None = None) -> tuple[float, ...]:
    """A list of learning rates: each a finite number > 0, no repeats."""
    rates = tuple(check_number(f"{name}[{i}]", v, 0, low_open=True)
                  for i, v in enumerate(check_sequence(name, values, count)))
    if len(set(rates)) != len(rates):
        raise BadParameter(f"{name} must not repeat a value, got {values!r}")
    return rates


def check_layers(name: str, values: Any, allowed: Sequence[int], count: int | None = None) -> tuple[int, ...]:
    """Layer numbers (paper numbering) that the runs record: each one of `allowed`."""
    layers = check_sequence(name, values, count)
    for i, k in enumerate(layers):
        if not is_int(k) or k not in allowed:
            raise BadParameter(f"{name}[{i}] must be one of the layers {_span(allowed)}, got {_got(k)}")
    if len(set(layers)) != len(layers):
        raise BadParameter(f"{name} must not repeat a layer, got {values!r}")
    return tuple(int(k) for k in layers)


def _span(allowed: Sequence[int]) -> str:
    allowed = list(allowed)
    if allowed == list(range(allowed[0], allowed[-1] + 1)):
        return f"{allowed[0]}..{allowed[-1]}"
    return str(allowed)


def must_include(name: str, values: tuple[float, ...], needed: float, why: str) -> None:
    if needed not in values:
        raise BadParameter(f"{name} must include {needed:g}: {why}; got {values!r}")


def device(device: Any) -> Any:
    """`device` as a torch.device (None: CUDA when present, else CPU); a clear error for a bad or absent one."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise BadParameter(f"device must be None, 'cpu', 'cuda' or 'cuda:N', got {device!r}") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise BadParameter(f"device {device!r} asked for, but torch sees no CUDA GPU here; use 'cpu'")
    return resolved
