"""The rules' parameters: every threshold and severity, with the contract's defaults.

Loading and validating them from a file and the environment is consumer/config.py's job; the
rules core only reads this frozen value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

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

# rule id -> parameter name -> (RulesConfig field, kind of value). The names are the same in the
# TOML file, the FRAUD_RULE_<RULE>_<PARAM> variables and rule-set files; each reader parses a
# kind its own way ("decimal": exact and > 0, "count": whole and >= 1, "float": > 0).
PARAMETER_FIELDS: dict[str, dict[str, tuple[str, str]]] = {
    "high_amount": {"threshold": ("high_amount_threshold", "decimal")},
    "velocity": {
        "max_count": ("velocity_max_count", "count"),
        "window_s": ("velocity_window_s", "decimal"),
    },
    "cross_border": {},
    "low_balance_high_amount": {
        "min_amount": ("low_balance_min_amount", "decimal"),
        "ratio": ("low_balance_ratio", "decimal"),
    },
    "impossible_travel": {
        "min_distance_km": ("travel_min_distance_km", "float"),
        "max_speed_kmh": ("travel_max_speed_kmh", "float"),
    },
    "card_testing": {
        "max_amount": ("card_testing_max_amount", "decimal"),
        "min_count": ("card_testing_min_count", "count"),
        "window_s": ("card_testing_window_s", "decimal"),
    },
    "new_device_high_amount": {"min_amount": ("new_device_min_amount", "decimal")},
}


@dataclass(frozen=True, slots=True)
class RulesConfig:
    """Thresholds (CONTRACT section 2 defaults) and the severity of each rule."""

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
