"""Reads a rule set file (YAML or JSON) into a RuleSet, or refuses it with every problem named.

Order of checks: the text is decoded and parsed (YAML with PyYAML's safe loader, no aliases, no
duplicate keys; JSON with no duplicate keys, no NaN), then checked against the published JSON
Schema (docs/ruleset.schema.json, a copy of consumer/resources/ruleset.schema.json), then every
custom rule's `when` is compiled. Any problem refuses the whole file with a RuleSetError whose
message names the file, the line where YAML tells it, the key path and the reason; for a `when`
condition, a caret excerpt points at the spot. Numbers are read as exact decimals in both
formats, so `threshold: 10000.001` means exactly that.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

from consumer.rules.config import PARAMETER_FIELDS, RULE_IDS, RulesConfig
from consumer.rules.expressions import ExpressionError, compile_expression
from consumer.rules.ruleset import (
    RESERVED_IDS,
    CustomRule,
    ModelScoreEntry,
    RuleSet,
    RuleSetError,
)

Format = Literal["yaml", "json"]
MAX_BYTES = 1 << 20

# rule id -> parameter -> (RulesConfig field, parser); the names consumer/rules_settings.py uses
# for the TOML file and FRAUD_RULE_* variables (a test holds the two tables equal).
_Parser = Callable[[Any], Any]


def _decimal(value: Any) -> Decimal:
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite() or number <= 0:
        raise ValueError(f"must be a positive number, got {value!r}")
    return number


def _count(value: Any) -> int:
    return int(value)


def _positive_float(value: Any) -> float:
    return float(_decimal(value))


_PARSERS: dict[str, _Parser] = {"decimal": _decimal, "count": _count, "float": _positive_float}
PARAMETERS: dict[str, dict[str, tuple[str, _Parser]]] = {
    rule: {name: (field, _PARSERS[kind]) for name, (field, kind) in params.items()}
    for rule, params in PARAMETER_FIELDS.items()
}
assert tuple(PARAMETERS) == RULE_IDS

MODEL_RULE_ID = "model_score"

Path_ = tuple[str | int, ...]
Mark = tuple[int, int]  # 1-based line and column in the file


# -- public ------------------------------------------------------------------------------------


def load_ruleset(
    source: str | os.PathLike[str] | bytes, fmt: Format | None = None, *, name: str | None = None
) -> RuleSet:
    """A RuleSet from a file path, or from the bytes of a file (an S3 object's body).

    `fmt` defaults to the path's suffix (.yaml, .yml, .json); for bytes, JSON when the text
    starts with `{`, else YAML. `name` is what messages call the source (default: the path).
    Raises RuleSetError naming every problem found.
    """
    if isinstance(source, bytes):
        data = source
        label = name or "rule set"
    else:
        path = Path(source)
        label = name or str(path)
        if fmt is None:
            suffix = path.suffix.lower()
            if suffix in (".yaml", ".yml"):
                fmt = "yaml"
            elif suffix == ".json":
                fmt = "json"
            else:
                raise RuleSetError([f"unknown format {suffix!r} (use .yaml, .yml or .json)"], label)
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_BYTES + 1)
        except OSError as exc:
            raise RuleSetError([f"cannot read it: {exc.strerror or exc}"], label) from None
    if len(data) > MAX_BYTES:
        raise RuleSetError([f"larger than {MAX_BYTES} bytes"], label)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RuleSetError([f"not UTF-8 (byte {exc.start})"], label) from None
    text = text.removeprefix("\ufeff")
    if fmt is None:
        fmt = "json" if text.lstrip().startswith("{") else "yaml"
    if fmt == "yaml":
        document, marks = _parse_yaml(text, label)
    elif fmt == "json":
        document, marks = _parse_json(text, label), _Marks()
    else:
        raise RuleSetError([f"unknown format {fmt!r} (yaml or json)"], label)
    return ruleset_from_document(document, label, marks)


def ruleset_from_document(
    document: Any, name: str = "rule set", marks: _Marks | None = None
) -> RuleSet:
    """A RuleSet from an already parsed document (a dict as YAML or JSON gives it)."""
    marks = marks or _Marks()
    problems = _schema_problems(document, name, marks)
    if problems:
        raise RuleSetError(problems, name)
    config = _rules_config(document.get("rules", {}), name, marks, problems)
    custom: list[CustomRule] = []
    for index, rule in enumerate(document.get("custom", [])):
        try:
            when = compile_expression(rule["when"])
        except ExpressionError as exc:
            problems.append(_when_problem(exc, index, rule["id"], name, marks))
            continue
        custom.append(
            CustomRule(
                id=rule["id"],
                description=rule["description"],
                severity=rule["severity"],
                when=when,
                shadow=rule.get("shadow", False),
                enabled=rule.get("enabled", True),
            )
        )
    ids = [rule["id"] for rule in document.get("custom", [])]
    for index, rule_id in enumerate(ids):
        path: Path_ = ("custom", index, "id")
        if rule_id in RESERVED_IDS:
            problems.append(f"{marks.where(name, path)}: {rule_id!r} is a built-in rule id")
        elif rule_id in ids[:index]:
            problems.append(f"{marks.where(name, path)}: {rule_id!r} is used twice")
    if problems:
        raise RuleSetError(problems, name)
    return RuleSet(document["version"], config, custom, _model_entry(document.get("rules", {})))


@cache
def ruleset_schema() -> dict[str, Any]:
    """The published JSON Schema of a rule set."""
    text = resources.files("consumer").joinpath("resources/ruleset.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def default_ruleset() -> RuleSet:
    """The packaged default rule set: the contract's rules with their defaults, no custom rules."""
    data = resources.files("consumer").joinpath("resources/rules.default.yaml").read_bytes()
    return load_ruleset(data, "yaml", name="rules.default.yaml")


# -- parsing -----------------------------------------------------------------------------------


class _Marks:
    """Where each key and value of a YAML document starts, by path (empty for JSON)."""

    def __init__(self) -> None:
        self.values: dict[Path_, Mark] = {}
        self.keys: dict[Path_, Mark] = {}
        # For single-line `when` scalars whose text is the value itself: where the value's first
        # character is in the file, so expression columns become file columns.
        self.exact: dict[Path_, Mark] = {}
        # For literal block scalars (`when: |`): the file line of the value's first line and its
        # indentation, so expression lines and columns become file lines and columns.
        self.block: dict[Path_, Mark] = {}

    def where(self, name: str, path: Path_, key: bool = False) -> str:
        mark = (self.keys if key else self.values).get(path) or self.values.get(path)
        dotted = _dotted(path)
        located = f"{name}:{mark[0]}" if mark else name
        return f"{located}: {dotted}" if dotted else located


def _dotted(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class _Loader(yaml.SafeLoader):
    """Safe loading, plus: floats as exact Decimals, no aliases, no duplicate keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise ComposerError(
                None, None, "aliases (*name) are not allowed in a rule set", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:
                    continue  # an unhashable key: construct_mapping reports it
                if duplicate:
                    raise ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
        return super().construct_mapping(node, deep=deep)


def _yaml_decimal(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    try:
        number = Decimal(text.replace("_", ""))
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        raise ConstructorError(None, None, f"{text!r} is not a finite number", node.start_mark)
    return number


_Loader.add_constructor("tag:yaml.org,2002:float", _yaml_decimal)


def _parse_yaml(text: str, name: str) -> tuple[Any, _Marks]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        document = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        raise RuleSetError([f"{where}: not valid YAML: {what}"], name) from None
    except yaml.YAMLError as exc:
        raise RuleSetError([f"not valid YAML: {exc}"], name) from None
    finally:
        loader.dispose()
    marks = _Marks()
    if node is not None:
        _collect_marks(node, text, marks)
    return document, marks


def _collect_marks(root: yaml.Node, text: str, marks: _Marks) -> None:
    stack: list[tuple[yaml.Node, Path_]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        marks.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if isinstance(key, str):
                    child = (*path, key)
                    marks.keys[child] = (
                        key_node.start_mark.line + 1,
                        key_node.start_mark.column + 1,
                    )
                    stack.append((value_node, child))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                stack.append((item, (*path, index)))
        elif isinstance(node, yaml.ScalarNode) and node.style == "|":
            lines = text[node.start_mark.index : node.end_mark.index].split("\n")[1:]
            first = next((line for line in lines if line.strip()), "")
            indent = len(first) - len(first.lstrip(" "))
            marks.block[path] = (node.start_mark.line + 2, indent + 1)
        elif isinstance(node, yaml.ScalarNode) and node.start_mark.line == node.end_mark.line:
            raw = text[node.start_mark.index : node.end_mark.index]
            value = node.value
            line, column = node.start_mark.line + 1, node.start_mark.column + 1
            if raw == value:
                marks.exact[path] = (line, column)
            elif len(raw) >= 2 and raw[0] in "'\"" and raw[1:-1] == value:
                marks.exact[path] = (line, column + 1)


def _parse_json(text: str, name: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise ValueError(f"duplicate key {key!r}")
            result[key] = value
        return result

    def no_constants(token: str) -> Any:
        raise ValueError(f"{token} is not a number")

    try:
        return json.loads(
            text,
            parse_float=Decimal,
            parse_constant=no_constants,
            object_pairs_hook=no_duplicates,
        )
    except json.JSONDecodeError as exc:
        raise RuleSetError(
            [f"{name}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}"], name
        ) from None
    except (ValueError, RecursionError) as exc:
        raise RuleSetError([f"not valid JSON: {exc}"], name) from None


# -- checking ----------------------------------------------------------------------------------


@cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = ruleset_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _schema_problems(document: Any, name: str, marks: _Marks) -> list[str]:
    if not isinstance(document, dict):
        return [f"{name}: a rule set is a mapping with version, rules and custom"]
    problems: list[tuple[str, str]] = []
    for error in _validator().iter_errors(document):
        path: Path_ = tuple(error.absolute_path)
        message = error.message
        key = False
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(error.schema.get("properties", {}))
            extra = sorted(str(k) for k in error.instance if k not in allowed)
            if extra:
                path = (*path, extra[0])
                key = True
                message = f"unknown key {extra[0]!r} (known: {', '.join(sorted(allowed))})"
        elif error.validator == "anyOf" and "description" in error.schema:
            message = f"{error.instance!r} is not {error.schema['description']}"
        elif error.validator == "type" and error.validator_value == "string":
            message += " (write it in quotes)"
        problems.append((_dotted(path), f"{marks.where(name, path, key)}: {message}"))
    return [text for _, text in sorted(problems)]


def _rules_config(
    rules: Mapping[str, Mapping[str, Any]], name: str, marks: _Marks, problems: list[str]
) -> RulesConfig:
    defaults = RulesConfig()
    fields: dict[str, Any] = {}
    severities = dict(defaults.severities)
    enabled = set(defaults.enabled)
    for rule, params in rules.items():
        if rule == MODEL_RULE_ID:
            continue  # not a contract rule: _model_entry reads it
        for param, value in params.items():
            if param == "severity":
                severities[rule] = value
            elif param == "enabled":
                (enabled.add if value else enabled.discard)(rule)
            else:
                field, parse = PARAMETERS[rule][param]
                try:
                    fields[field] = parse(value)
                except (ValueError, InvalidOperation) as exc:
                    problems.append(f"{marks.where(name, ('rules', rule, param))}: {exc}")
    return dataclasses.replace(
        defaults, **fields, severities=severities, enabled=frozenset(enabled)
    )


def _model_entry(rules: Mapping[str, Mapping[str, Any]]) -> ModelScoreEntry | None:
    """`rules.model_score` (already checked by the schema: threshold 0-100, a severity)."""
    entry = rules.get(MODEL_RULE_ID)
    if entry is None:
        return None
    threshold = entry.get("threshold")
    return ModelScoreEntry(
        enabled=entry.get("enabled", True),
        threshold=None if threshold is None else float(threshold),
        severity=entry.get("severity"),
        shadow=entry.get("shadow"),
    )


def _when_problem(exc: ExpressionError, index: int, rule_id: str, name: str, marks: _Marks) -> str:
    """Where the file says (line and column in it, when the YAML text maps one to one onto the
    condition), else the key path and the line and column within the condition."""
    path: Path_ = ("custom", index, "when")
    spot: Mark | None = None
    exact = marks.exact.get(path)
    block = marks.block.get(path)
    if exact is not None and exc.line == 1:
        spot = (exact[0], exact[1] + exc.column - 1)
    elif block is not None:
        spot = (block[0] + exc.line - 1, block[1] + exc.column - 1)
    if spot is not None:
        where = f"{name}:{spot[0]}:{spot[1]}: custom[{index}] ({rule_id}) when"
        return f"{where}: {exc.reason}\n{exc.excerpt}"
    return (
        f"{marks.where(name, path)} ({rule_id}): line {exc.line}, column {exc.column} of the "
        f"condition: {exc.reason}\n{exc.excerpt}"
    )
