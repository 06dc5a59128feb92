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
from pathlib import Path
from typing import Any

from consumer.errors import FraudstreamError
from consumer.rules.config import (
    PARAMETER_FIELDS,
    PARAMETER_KINDS,
    RULE_IDS,
    SEVERITIES,
    ParameterKind,
    RulesConfig,
    parse_parameter,
    shown,
)


class RulesConfigError(FraudstreamError, ValueError):
    """A rules parameter is unknown or invalid; the message names the file key or variable."""


def _parser(kind: ParameterKind) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        return parse_parameter(kind, value)

    return parse


# rule id -> parameter name -> (RulesConfig field, parser): every value checked against its
# kind's bounds (consumer/rules/config.py, docs/rules-as-data.md#limits), as rule-set files are.
PARAMETERS: dict[str, dict[str, tuple[str, Callable[[Any], Any]]]] = {
    rule: {name: (field, _parser(PARAMETER_KINDS[kind])) for name, (field, kind) in params.items()}
    for rule, params in PARAMETER_FIELDS.items()
}
assert set(PARAMETERS) == set(RULE_IDS)

# A rules file is a few hundred bytes; anything this large is a mistake, refused unread.
MAX_FILE_BYTES = 1 << 20


def _severity(value: Any) -> str:
    text = value.strip().lower() if isinstance(value, str) else ""
    if text not in SEVERITIES:
        raise ValueError(f"must be one of {', '.join(SEVERITIES)}, got {shown(value)}")
    return text


def _enabled(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = value.strip().lower() if isinstance(value, str) else None
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"must be true or false, got {shown(value)}")


class _Builder:
    def __init__(self) -> None:
        defaults = RulesConfig()
        self.fields: dict[str, Any] = {}
        self.severities = dict(defaults.severities)
        self.enabled = set(defaults.enabled)

    def set(self, rule: str, param: str, value: Any, where: str) -> None:
        if rule not in PARAMETERS:
            raise RulesConfigError(
                f"{where}: unknown rule {shown(rule)} (rules: {', '.join(RULE_IDS)})"
            )
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
                raise RulesConfigError(
                    f"{where}: unknown parameter {shown(param)} of {rule} ({known})"
                )
        except ValueError as exc:
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
    """The rules' parameters from FRAUD_RULES_FILE and FRAUD_RULE_* over the defaults.

    Raises RulesConfigError naming the file key or the variable, and nothing else, whatever the
    file holds (bytes that are not UTF-8 or TOML, deep nesting, dates, huge numbers).
    """
    builder = _Builder()
    path = env.get("FRAUD_RULES_FILE", "").strip()
    if path:
        for rule, params in _read_rules_file(path).items():
            if not isinstance(params, dict):
                raise RulesConfigError(f"{path}: [rules.{rule[:80]}] must be a table")
            for param, value in params.items():
                builder.set(rule, param, value, f"{path}: rules.{rule}.{param}")
    for key, value in sorted(env.items()):
        if key.startswith("FRAUD_RULE_") and key != "FRAUD_RULES_FILE":
            parsed = _env_rule_param(key)
            if parsed is None:
                raise RulesConfigError(f"{key}: unknown rule (rules: {', '.join(RULE_IDS)})")
            builder.set(*parsed, value, key)
    return builder.build()


def _read_rules_file(path: str) -> dict[str, Any]:
    """The file's [rules] table; RulesConfigError for anything else."""
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise RulesConfigError(
            f"FRAUD_RULES_FILE: cannot read {path}: {exc.strerror or exc}"
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise RulesConfigError(f"FRAUD_RULES_FILE: {path} is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RulesConfigError(
            f"FRAUD_RULES_FILE: cannot read {path}: not UTF-8 (byte {exc.start})"
        ) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesConfigError(f"FRAUD_RULES_FILE: cannot read {path}: {exc}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        # tomllib lets a few through: an integer past Python's digit limit (ValueError), deep
        # nesting (RecursionError).
        why = "nested too deeply" if isinstance(exc, RecursionError) else type(exc).__name__
        if isinstance(exc, ValueError) and "digit" in str(exc):
            why = "an integer with too many digits"
        raise RulesConfigError(f"FRAUD_RULES_FILE: cannot read {path}: {why}") from None
    unknown = set(document) - {"rules"}
    if unknown:
        raise RulesConfigError(
            f"{path}: unknown section(s) {', '.join(k[:80] for k in sorted(unknown))}"
        )
    rules = document.get("rules", {})
    if not isinstance(rules, dict):
        raise RulesConfigError(f"{path}: rules must be a table ([rules.<rule>])")
    return rules
