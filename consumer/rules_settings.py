"""Loads the rules' parameters from an optional TOML file and FRAUD_RULE_* variables.

Precedence: the contract's defaults, then the file named by FRAUD_RULES_FILE, then one variable
per parameter, `FRAUD_RULE_<RULE>_<PARAM>` (e.g. FRAUD_RULE_HIGH_AMOUNT_THRESHOLD=5000,
FRAUD_RULE_VELOCITY_SEVERITY=high, FRAUD_RULE_CROSS_BORDER_ENABLED=false). An unknown rule or
parameter, or a bad value, is a ConfigError naming where it came from: a typo must not leave a
rule silently at its default.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from consumer.rules.config import PARAMETER_FIELDS, RULE_IDS, SEVERITIES, RulesConfig


class RulesConfigError(ValueError):
    """A rules parameter is unknown or invalid; the message names the file key or variable."""


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("must be a number")
    # A TOML float is converted through its shortest repr, which is the literal as written.
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    if not number.is_finite() or number <= 0:
        raise ValueError(f"must be a positive number, got {value!r}")
    return number


def _count(value: Any) -> int:
    if isinstance(value, bool) or not str(value).strip().isdigit() or int(value) < 1:
        raise ValueError(f"must be a whole number >= 1, got {value!r}")
    return int(value)


def _positive_float(value: Any) -> float:
    return float(_decimal(value))


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "decimal": _decimal,
    "count": _count,
    "float": _positive_float,
}
# rule id -> parameter name -> (RulesConfig field, parser)
PARAMETERS: dict[str, dict[str, tuple[str, Callable[[Any], Any]]]] = {
    rule: {name: (field, _PARSERS[kind]) for name, (field, kind) in params.items()}
    for rule, params in PARAMETER_FIELDS.items()
}
assert set(PARAMETERS) == set(RULE_IDS)


def _severity(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in SEVERITIES:
        raise ValueError(f"must be one of {', '.join(SEVERITIES)}, got {value!r}")
    return text


def _enabled(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"must be true or false, got {value!r}")


class _Builder:
    def __init__(self) -> None:
        defaults = RulesConfig()
        self.fields: dict[str, Any] = {}
        self.severities = dict(defaults.severities)
        self.enabled = set(defaults.enabled)

    def set(self, rule: str, param: str, value: Any, where: str) -> None:
        if rule not in PARAMETERS:
            raise RulesConfigError(f"{where}: unknown rule {rule!r} (rules: {', '.join(RULE_IDS)})")
        try:
            if param == "severity":
                self.severities[rule] = _severity(value)
            elif param == "enabled":
                (self.enabled.add if _enabled(value) else self.enabled.discard)(rule)
            elif param in PARAMETERS[rule]:
                field, parse = PARAMETERS[rule][param]
                self.fields[field] = parse(value)
            else:
                known = ", ".join([*PARAMETERS[rule], "severity", "enabled"])
                raise RulesConfigError(f"{where}: unknown parameter {param!r} of {rule} ({known})")
        except (ValueError, InvalidOperation) as exc:
            if isinstance(exc, RulesConfigError):
                raise
            raise RulesConfigError(f"{where}: {exc}") from None

    def build(self) -> RulesConfig:
        return dataclasses.replace(
            RulesConfig(),
            **self.fields,
            severities=self.severities,
            enabled=frozenset(self.enabled),
        )


def _env_rule_param(key: str) -> tuple[str, str] | None:
    """FRAUD_RULE_CARD_TESTING_MIN_COUNT -> ("card_testing", "min_count")."""
    rest = key[len("FRAUD_RULE_") :].lower()
    for rule in sorted(PARAMETERS, key=len, reverse=True):
        if rest.startswith(rule + "_"):
            return rule, rest[len(rule) + 1 :]
    return None


def load_rules_config(env: Mapping[str, str]) -> RulesConfig:
    builder = _Builder()
    path = env.get("FRAUD_RULES_FILE", "").strip()
    if path:
        try:
            document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise RulesConfigError(f"FRAUD_RULES_FILE: cannot read {path}: {exc}") from None
        unknown = set(document) - {"rules"}
        if unknown:
            raise RulesConfigError(f"{path}: unknown section(s) {', '.join(sorted(unknown))}")
        for rule, params in document.get("rules", {}).items():
            if not isinstance(params, dict):
                raise RulesConfigError(f"{path}: [rules.{rule}] must be a table")
            for param, value in params.items():
                builder.set(rule, param, value, f"{path}: rules.{rule}.{param}")
    for key, value in sorted(env.items()):
        if key.startswith("FRAUD_RULE_") and key != "FRAUD_RULES_FILE":
            parsed = _env_rule_param(key)
            if parsed is None:
                raise RulesConfigError(f"{key}: unknown rule (rules: {', '.join(RULE_IDS)})")
            builder.set(*parsed, value, key)
    return builder.build()
