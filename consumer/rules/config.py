"""The rules' parameters: every threshold and severity, with the contract's defaults.

Loading and validating them from a file and the environment is consumer/settings/config.py's job;
the rules core only reads this frozen value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

SEVERITIES: tuple[str, ...] = ("low", "medium", "high")

RULE_IDS: tuple[str, ...] = (
    "high_amount",
    "velocity",
    "cross_border",
    "low_balance_high_amount",
    "impossible_travel",
    "card_testing",
    "new_device_high_amount",
)

LIMITS_DOC = "docs/rules-as-data.md#limits"

# Every number a rule set or the rules settings give has at most this many digits after the
# point as written (amounts in records are multiples of 1e-18), and no literal in a `when`
# condition is larger than LITERAL_MAX in magnitude.
MAX_PLACES = 18
LITERAL_MAX = Decimal("1e15")
# Longest number text read at all (sign, digits, point, exponent): longer is refused unread.
MAX_NUMBER_CHARS = 100


@dataclass(frozen=True, slots=True)
class ParameterKind:
    """What values a parameter takes: low..high (`low_open`: low itself excluded), at most
    MAX_PLACES decimal places (`whole`: whole numbers only), read as `result`; `text` says it
    in a message."""

    name: str
    low: Decimal
    high: Decimal
    low_open: bool
    result: str  # "decimal" (exact), "int" or "float"
    text: str
    whole: bool = False


_PLACES = f"with at most {MAX_PLACES} decimal places"

# The bounds of each kind of parameter (docs/rules-as-data.md#limits). Chosen far beyond what an
# analyst sets, tight enough that no accepted value makes a judgement slow or the history kept
# unbounded: windows up to 30 days (the state store then keeps 30 days), speeds from 30 km/h
# (slower, the antipode's reach, and so the history kept, would exceed 30 days), distances up
# to 20,000 km (no two points on earth are more than 20,015 km apart).
PARAMETER_KINDS: dict[str, ParameterKind] = {
    kind.name: kind
    for kind in (
        ParameterKind(
            "amount",
            Decimal(0),
            LITERAL_MAX,
            True,
            "decimal",
            f"a number > 0 and <= 1e15 {_PLACES}",
        ),
        ParameterKind(
            "ratio",
            Decimal(0),
            Decimal(10**6),
            True,
            "decimal",
            f"a number > 0 and <= 1e6 {_PLACES}",
        ),
        ParameterKind(
            "window",
            Decimal(1),
            Decimal(30 * 86400),
            False,
            "decimal",
            f"seconds >= 1 and <= 2592000 (30 days) {_PLACES}",
        ),
        ParameterKind(
            "count",
            Decimal(1),
            Decimal(100_000),
            False,
            "int",
            "a whole number from 1 to 100000",
            True,
        ),
        ParameterKind(
            "distance", Decimal(0), Decimal(20_000), True, "float", f"km > 0 and <= 20000 {_PLACES}"
        ),
        ParameterKind(
            "speed",
            Decimal(30),
            Decimal(100_000),
            False,
            "float",
            f"km/h >= 30 and <= 100000 {_PLACES}",
        ),
    )
}

# rule id -> parameter name -> (RulesConfig field, kind of value). The names are the same in the
# TOML file, the FRAUD_RULE_<RULE>_<PARAM> variables and rule-set files; every reader checks a
# value with parse_parameter and its kind's bounds.
PARAMETER_FIELDS: dict[str, dict[str, tuple[str, str]]] = {
    "high_amount": {"threshold": ("high_amount_threshold", "amount")},
    "velocity": {
        "max_count": ("velocity_max_count", "count"),
        "window_s": ("velocity_window_s", "window"),
    },
    "cross_border": {},
    "low_balance_high_amount": {
        "min_amount": ("low_balance_min_amount", "amount"),
        "ratio": ("low_balance_ratio", "ratio"),
    },
    "impossible_travel": {
        "min_distance_km": ("travel_min_distance_km", "distance"),
        "max_speed_kmh": ("travel_max_speed_kmh", "speed"),
    },
    "card_testing": {
        "max_amount": ("card_testing_max_amount", "amount"),
        "min_count": ("card_testing_min_count", "count"),
        "window_s": ("card_testing_window_s", "window"),
    },
    "new_device_high_amount": {"min_amount": ("new_device_min_amount", "amount")},
}

_NUMBER_TEXT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_WHOLE_TEXT = re.compile(r"[0-9]+")


def shown(value: object, width: int = 40) -> str:
    """`repr(value)`, cut to `width` characters: messages never quote a huge value whole."""
    text = repr(value) if not isinstance(value, Decimal) else str(value)
    return text if len(text) <= width else f"{text[: width - 3]}..."


def decimal_places(number: Decimal) -> int:
    """Digits after the point as written (0 for 1E+3)."""
    exponent = number.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def parse_parameter(kind: ParameterKind, value: object) -> Decimal | int | float:
    """`value` (an int, a Decimal, a finite float, or text) as the kind's result, within its
    bounds; ValueError saying what it must be. Never raises anything else, for any value."""
    want = f"must be {kind.text}, got {shown(value)}"
    if isinstance(value, bool):
        raise ValueError(want)
    number: Decimal
    try:
        if isinstance(value, int):
            if value.bit_length() > 64:
                raise ValueError(want)
            number = Decimal(value)
        elif isinstance(value, Decimal):
            number = value
        elif isinstance(value, float):
            number = Decimal(repr(value))  # the shortest repr: a TOML float as written
        elif isinstance(value, str):
            text = value.strip()
            if len(text) > MAX_NUMBER_CHARS or not (
                _WHOLE_TEXT if kind.whole else _NUMBER_TEXT
            ).fullmatch(text):
                raise ValueError(want)
            number = Decimal(text)
        else:
            raise ValueError(want)
    except (ArithmeticError, InvalidOperation):
        raise ValueError(want) from None
    if not number.is_finite():
        raise ValueError(want)
    if number > kind.high or number < kind.low or (kind.low_open and number == kind.low):
        raise ValueError(want)
    if decimal_places(number) > MAX_PLACES:
        raise ValueError(want)
    if kind.whole:
        if number != number.to_integral_value():
            raise ValueError(want)
        return int(number)
    if kind.result == "float":
        return float(number)
    return number


@dataclass(frozen=True, slots=True)
class RulesConfig:
    """Thresholds (docs/contract.md section 2 defaults) and the severity of each rule."""

    # high_amount: amount > threshold
    high_amount_threshold: Decimal = Decimal("10000")
    # velocity: more than max_count transactions within window_s (this one included)
    velocity_max_count: int = 3
    velocity_window_s: Decimal = Decimal("60")
    # low_balance_high_amount: balance present, amount >= min_amount and amount > ratio * balance
    low_balance_min_amount: Decimal = Decimal("1000")
    low_balance_ratio: Decimal = Decimal("0.9")
    # impossible_travel: distance >= min_distance_km and speed > max_speed_kmh
    travel_min_distance_km: float = 100.0
    travel_max_speed_kmh: float = 900.0
    # card_testing: at least min_count transactions with amount <= max_amount within window_s
    card_testing_max_amount: Decimal = Decimal("5.00")
    card_testing_min_count: int = 5
    card_testing_window_s: Decimal = Decimal("600")
    # new_device_high_amount: unseen device, amount >= min_amount, account not new
    new_device_min_amount: Decimal = Decimal("1000")
    severities: dict[str, str] = field(
        default_factory=lambda: {
            "high_amount": "high",
            "velocity": "medium",
            "cross_border": "low",
            "low_balance_high_amount": "high",
            "impossible_travel": "high",
            "card_testing": "high",
            "new_device_high_amount": "high",
        }
    )
    enabled: frozenset[str] = frozenset(RULE_IDS)

    def severity(self, rule: str) -> str:
        return self.severities[rule]
