"""Reads a rule set file (YAML or JSON) into a RuleSet, or refuses it with every problem named.

One failure, and only one: whatever the bytes, `load_ruleset` returns a RuleSet or raises
RuleSetError naming the file (and the line and column where the text has them), within a second
(tests/unit/rules/test_ruleset_nasty.py: arbitrary bytes and documents, and a corpus of nasty
files).
A rule set is hot-reloaded by every worker, so any other exception would stop the processor, on
every worker, and again after each restart.

Order of checks, each bounded in time:
1. size (MAX_BYTES), UTF-8, then the text is parsed:
   - YAML: first a pass over the parser's events (libyaml's, in C, when PyYAML has it) that
     refuses, with line and column, what a rule set never needs and what makes parsing costly:
     anchors and aliases, tags other than `!!str`, nesting deeper than MAX_NESTING, more than
     MAX_VALUES values; then the document is built with a resolver and constructors of our own:
     strings, true/false, null, decimal integers (as int) and decimals (as exact Decimal, `1e3`
     included, as in JSON), mappings with text keys and no duplicates, lists. Plain scalars that
     YAML 1.1 would read as something else are refused where they stand, with a hint to quote
     them: dates and times (`2026-02-30`), base-60 numbers (`1:30:00`), octal (`0100`, `0o17`),
     hexadecimal, binary, `1_000`, `.inf`, `.nan`; so are merge keys (`<<`).
   - JSON: numbers as int / exact Decimal, no NaN or Infinity, no duplicate keys; then the same
     limits on nesting and values.
   Either way no number of more than MAX_NUMBER_CHARS characters is converted, and no string
   holds a lone surrogate.
2. the published JSON Schema (docs/ruleset.schema.json, a copy of
   consumer/resources/ruleset.schema.json), with its bounds on every parameter and on the number
   of custom rules; messages quote values cut short.
3. each parameter against its kind's bounds (consumer.rules.config.parse_parameter: also what
   a JSON Schema cannot say, e.g. at most 18 decimal places), every custom rule's `when`
   compiled (consumer.rules.expressions: length, depth, expression nodes, list sizes, literals
   within ±1e15), and the expression nodes of all rules together (MAX_TOTAL_NODES).
A problem refuses the whole file with a RuleSetError whose message names the file, the line
where YAML tells it, the key path and the reason; for a `when` condition, a caret excerpt points
at the spot. Bounds: docs/rules-as-data.md#limits. Anything unforeseen that still escapes is
turned into a RuleSetError too ("internal error while reading it: <type>"), never let out.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml
from yaml.constructor import BaseConstructor
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver

from consumer.rules.config import (
    LIMITS_DOC,
    MAX_NUMBER_CHARS,
    MAX_PLACES,
    PARAMETER_FIELDS,
    PARAMETER_KINDS,
    RULE_IDS,
    RulesConfig,
    decimal_places,
    parse_parameter,
    shown,
)
from consumer.rules.expressions import ExpressionError, compile_expression
from consumer.rules.ruleset import (
    RESERVED_IDS,
    CustomRule,
    ModelScoreEntry,
    RuleSet,
    RuleSetError,
)

Format = Literal["yaml", "json"]

# Limits of the file (docs/rules-as-data.md#limits). Size, values and nesting sit well above the
# largest rule set within the other limits (MAX_RULES rules with conditions and descriptions at
# their longest: its size is in that section).
MAX_BYTES = 512 * 1024
MAX_NESTING = 8  # mappings and lists inside each other
MAX_VALUES = 5000  # mappings, lists and scalars in all
MAX_RULES = 100  # custom rules (the schema's maxItems)
MAX_TOTAL_NODES = 600  # expression nodes of all custom rules together
MAX_PROBLEMS = 20  # problems listed in one refusal; the rest are counted

# rule id -> parameter -> (RulesConfig field, parser); the names consumer/settings/rules.py uses
# for the TOML file and FRAUD_RULE_* variables (a test holds the two tables equal), and the
# same bounds.
_Parser = Callable[[Any], Any]


def _parser(kind: str) -> _Parser:
    parameter_kind = PARAMETER_KINDS[kind]

    def parse(value: Any) -> Any:
        return parse_parameter(parameter_kind, value)

    return parse


PARAMETERS: dict[str, dict[str, tuple[str, _Parser]]] = {
    rule: {name: (field, _parser(kind)) for name, (field, kind) in params.items()}
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
    Raises RuleSetError naming every problem found, and no other exception.
    """
    label = name or ("rule set" if isinstance(source, bytes) else str(source))
    try:
        return _load(source, fmt, label)
    except RuleSetError:
        raise
    except Exception as exc:  # defence in depth: every known class is refused at its source
        raise RuleSetError(
            [f"internal error while reading it: {type(exc).__name__}"], label
        ) from exc


def ruleset_from_document(
    document: Any, name: str = "rule set", marks: _Marks | None = None
) -> RuleSet:
    """A RuleSet from an already parsed document (a dict as YAML or JSON gives it).

    Raises RuleSetError, and no other exception, for any document."""
    try:
        return _from_document(document, name, marks or _Marks())
    except RuleSetError:
        raise
    except Exception as exc:
        raise RuleSetError(
            [f"internal error while reading it: {type(exc).__name__}"], name
        ) from exc


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


def _refused(problems: list[str], name: str) -> RuleSetError:
    if len(problems) > MAX_PROBLEMS:
        more = len(problems) - MAX_PROBLEMS
        problems = [
            *problems[:MAX_PROBLEMS],
            f"... and {more} more problem{'s' if more > 1 else ''}",
        ]
    return RuleSetError(problems, name)


def _load(source: str | os.PathLike[str] | bytes, fmt: Format | None, label: str) -> RuleSet:
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        if fmt is None:
            suffix = path.suffix.lower()
            if suffix in (".yaml", ".yml"):
                fmt = "yaml"
            elif suffix == ".json":
                fmt = "json"
            else:
                raise RuleSetError(
                    [f"unknown format {shown(suffix)} (use .yaml, .yml or .json)"], label
                )
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_BYTES + 1)
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise RuleSetError([f"cannot read it: {why}"], label) from None
    if len(data) > MAX_BYTES:
        raise RuleSetError([f"larger than {MAX_BYTES} bytes ({LIMITS_DOC})"], label)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RuleSetError([f"{label}:{line}: not UTF-8 (byte {exc.start})"], label) from None
    text = text.removeprefix("\ufeff")
    if fmt is None:
        fmt = "json" if text.lstrip().startswith("{") else "yaml"
    if fmt == "yaml":
        document, marks = _parse_yaml(text, label)
    elif fmt == "json":
        document = _parse_json(text, label)
        if _small(document):
            marks = _json_marks(text)
        else:
            marks = _Marks()
            spot = _json_too_deep(text)
            if spot is not None:
                where = f"{label}:{spot[0]}:{spot[1]}"
                problem = f"{where}: nested deeper than {MAX_NESTING} levels ({LIMITS_DOC})"
                raise RuleSetError([problem], label)
    else:
        raise RuleSetError([f"unknown format {shown(fmt)} (yaml or json)"], label)
    return _from_document(document, label, marks)


def _from_document(document: Any, name: str, marks: _Marks) -> RuleSet:
    problems = _shape_problems(document, name, marks)
    if problems:
        raise _refused(problems, name)
    problems = _schema_problems(document, name, marks)
    if problems:
        raise _refused(problems, name)
    config = _rules_config(document.get("rules", {}), name, marks, problems)
    model = _model_entry(document.get("rules", {}), name, marks, problems)
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
    seen: set[str] = set()
    for index, rule_id in enumerate(ids):
        path: Path_ = ("custom", index, "id")
        if rule_id in RESERVED_IDS:
            problems.append(f"{marks.where(name, path)}: {rule_id!r} is a built-in rule id")
        elif rule_id in seen:
            problems.append(f"{marks.where(name, path)}: {rule_id!r} is used twice")
        seen.add(rule_id)
    total = sum(rule.when.nodes for rule in custom)
    if total > MAX_TOTAL_NODES:
        problems.append(
            f"{marks.where(name, ('custom',))}: the custom rules have {total} expression nodes in "
            f"all; the limit is {MAX_TOTAL_NODES} ({LIMITS_DOC})"
        )
    if problems:
        raise _refused(problems, name)
    return RuleSet(document["version"], config, custom, model)


# -- parsing: YAML -----------------------------------------------------------------------------


class _Marks:
    """Where each key and value of a document starts, by path (a JSON file's are found by
    reading it as YAML, best effort; empty for a document built in code)."""

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


class _YamlRefusal(Exception):
    """Something a rule set never holds, at a mark of the text."""

    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_DECIMAL = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_REFUSED = "tag:fraudstream.invalid,2026:refused"
# Explicit tags a rule set may carry: `!!str` (and `!`, YAML's "plain string").
_EXPLICIT_TAGS = frozenset([_STR, "!"])

_DIGITS: list[str | None] = list("0123456789")
_SIGNED: list[str | None] = [*_DIGITS, "-", "+"]
# Plain scalars YAML 1.1 reads as something other than the text, or that look like a number in
# a form this loader does not read: each refused with its reason (the first pattern that
# matches wins).
_REFUSED_SCALARS: list[tuple[re.Pattern[str], list[str | None], str]] = [
    (
        re.compile(
            r"^(?:[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
            r"(?:(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?"
            r"(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)?)$"
        ),
        _DIGITS,
        "reads as a date in YAML, and a rule set holds no dates: write it in quotes",
    ),
    (
        re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$"),
        _SIGNED,
        "reads as a base-60 number in YAML 1.1 (1:30 is 90): write it in quotes",
    ),
    (
        re.compile(r"^[-+]?0x[0-9a-fA-F_]+$"),
        _SIGNED,
        "is a hexadecimal number: write numbers in decimal, or text in quotes",
    ),
    (
        re.compile(r"^[-+]?0b[01_]+$"),
        _SIGNED,
        "is a binary number: write numbers in decimal, or text in quotes",
    ),
    (
        re.compile(r"^[-+]?0(?:o[0-7_]+|[0-9_]+)$"),
        _SIGNED,
        "has a leading zero (YAML 1.1 reads 0100 as octal, 64): write it without, or text in"
        " quotes",
    ),
    (
        re.compile(r"^[-+]?(?=[._]*[0-9])[0-9._]*_[0-9._]*(?:[eE][-+]?[0-9]+)?$"),
        [*_SIGNED, ".", "_"],
        "has _ separators: write the number without them, or text in quotes",
    ),
    (
        re.compile(r"^(?:[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
        ["-", "+", "."],
        "is not a finite number",
    ),
]


class _Resolver(BaseResolver):
    """Plain scalars: the refused forms above, YAML 1.1's true/false and null, decimal integers
    and decimals (`1e3` too); everything else is text."""


for _pattern, _first, _ in _REFUSED_SCALARS:
    _Resolver.add_implicit_resolver(_REFUSED, _pattern, _first)
_Resolver.add_implicit_resolver(
    _BOOL,
    re.compile(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$"),
    list("yYnNtTfFoO"),
)
_Resolver.add_implicit_resolver(_NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_Resolver.add_implicit_resolver(_MERGE, re.compile(r"^<<$"), ["<"])
_Resolver.add_implicit_resolver(_INT, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), _SIGNED)
_Resolver.add_implicit_resolver(
    _DECIMAL,
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][-+]?[0-9]+)?$"),
    [*_SIGNED, "."],
)


class _Constructor(BaseConstructor):
    """Builds only what a rule set holds; anything else is a _YamlRefusal at its mark."""

    def construct_text(self, node: Any) -> str:
        if not isinstance(node, ScalarNode):
            raise _YamlRefusal("expected text here", node.start_mark)
        value: str = node.value
        return value

    def construct_null(self, node: Any) -> None:
        self.construct_text(node)

    def construct_bool(self, node: Any) -> bool:
        return self.construct_text(node).lower() in ("yes", "true", "on")

    def construct_int(self, node: Any) -> int:
        text = self.construct_text(node)
        if len(text) > MAX_NUMBER_CHARS:
            raise _YamlRefusal(_long_number(text), node.start_mark)
        return int(text)

    def construct_decimal(self, node: Any) -> Decimal:
        text = self.construct_text(node)
        if len(text) > MAX_NUMBER_CHARS:
            raise _YamlRefusal(_long_number(text), node.start_mark)
        try:
            return Decimal(text)
        except ArithmeticError:  # an exponent beyond what Decimal holds
            raise _YamlRefusal(
                f"{shown(text)} is not a number a rule set takes", node.start_mark
            ) from None

    def construct_refused(self, node: Any) -> Any:
        text = self.construct_text(node)
        reason = next(why for pattern, _, why in _REFUSED_SCALARS if pattern.match(text))
        raise _YamlRefusal(f"{shown(text)} {reason}", node.start_mark)

    def construct_map(self, node: Any) -> dict[str, Any]:
        if not isinstance(node, MappingNode):
            raise _YamlRefusal("expected a mapping here", node.start_mark)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                raise _YamlRefusal(
                    "merge keys (<<) are not allowed in a rule set", key_node.start_mark
                )
            if not isinstance(key_node, ScalarNode) or key_node.tag != _STR:
                hint = " (write it in quotes)" if isinstance(key_node, ScalarNode) else ""
                raise _YamlRefusal(
                    f"a key must be text; this one is {_yaml_kind(key_node)}{hint}",
                    key_node.start_mark,
                )
            key = key_node.value
            if key in result:
                raise _YamlRefusal(f"duplicate key {shown(key)}", key_node.start_mark)
            result[key] = self.construct_object(value_node, deep=True)
        return result

    def construct_list(self, node: Any) -> list[Any]:
        if not isinstance(node, SequenceNode):
            raise _YamlRefusal("expected a list here", node.start_mark)
        return [self.construct_object(child, deep=True) for child in node.value]

    def construct_other(self, node: Any) -> Any:
        raise _YamlRefusal(
            f"the tag {_short_tag(node.tag)} is not allowed in a rule set", node.start_mark
        )


_Constructor.yaml_constructors = {
    _STR: _Constructor.construct_text,
    _NULL: _Constructor.construct_null,
    _BOOL: _Constructor.construct_bool,
    _INT: _Constructor.construct_int,
    _DECIMAL: _Constructor.construct_decimal,
    _REFUSED: _Constructor.construct_refused,
    _MAP: _Constructor.construct_map,
    _SEQ: _Constructor.construct_list,
    None: _Constructor.construct_other,  # any other tag
}


def _yaml_kind(node: Any) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    kind = {_INT: "a number", _DECIMAL: "a number", _BOOL: "true or false", _NULL: "null"}
    return kind.get(node.tag, f"a {_short_tag(node.tag)} value")


def _short_tag(tag: str | None) -> str:
    text = str(tag)
    return shown(
        "!!" + text.removeprefix("tag:yaml.org,2002:")
        if text.startswith("tag:yaml.org,2002:")
        else text,
        60,
    ).strip("'")


def _long_number(text: str) -> str:
    return (
        f"a number of {len(text)} characters; a rule set's numbers are at most 1e15 with at most "
        f"{MAX_PLACES} decimal places ({LIMITS_DOC})"
    )


class _PyLoader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    yaml.composer.Composer,
    _Constructor,
    _Resolver,
):
    """The loader on PyYAML's pure-Python parser."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        _Constructor.__init__(self)
        _Resolver.__init__(self)


_CParser: Any
try:
    _CParser = importlib.import_module("yaml._yaml").CParser
except (ImportError, AttributeError):  # pragma: no cover - PyYAML built without libyaml
    _CParser = None

_CLoader: Any = None
if _CParser is not None:

    class _CLoader(_CParser, _Constructor, _Resolver):  # type: ignore[misc,no-redef]
        """The loader on libyaml's parser (C, much faster: docs/rules-as-data.md#limits)."""

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            _Constructor.__init__(self)
            _Resolver.__init__(self)


# Tests switch this off to run the pure-Python parser (what a PyYAML without libyaml uses).
use_libyaml = _CParser is not None


def _parse_yaml(text: str, name: str) -> tuple[Any, _Marks]:
    c = use_libyaml
    try:
        _check_events(text, c)
        loader = _CLoader(text) if c else _PyLoader(text)
        try:
            node = loader.get_single_node()
            document = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except _YamlRefusal as exc:
        raise RuleSetError([f"{_at(name, exc.mark)}: {exc.message}"], name) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        raise RuleSetError([f"{_at(name, mark)}: not valid YAML: {what}"], name) from None
    except yaml.reader.ReaderError as exc:
        where = _reader_spot(text, exc.position, c)
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else "a character"
        raise RuleSetError(
            [f"{name}:{where[0]}:{where[1]}: not valid YAML: {char} is not allowed ({exc.reason})"],
            name,
        ) from None
    except yaml.YAMLError as exc:
        raise RuleSetError([f"{name}: not valid YAML: {_cut(str(exc), 200)}"], name) from None
    except RecursionError:  # pragma: no cover - MAX_NESTING is checked first
        raise RuleSetError([f"{name}: not valid YAML: nested too deeply"], name) from None
    marks = _Marks()
    if node is not None:
        _collect_marks(node, text, marks)
    return document, marks


def _at(name: str, mark: Any) -> str:
    return f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name


def _reader_spot(text: str, position: int, c: bool) -> Mark:
    """Line and column of a reader error: libyaml counts bytes of UTF-8, PyYAML characters."""
    if c:
        position = len(text.encode("utf-8")[:position].decode("utf-8", errors="ignore"))
    line_start = text.rfind("\n", 0, position) + 1
    return text.count("\n", 0, position) + 1, position - line_start + 1


def _check_events(text: str, c: bool) -> None:
    """The cheap first pass over the parser's events: no aliases, anchors or tags, nesting and
    size within bounds. Stops at the first problem, so a huge or deep text costs what it takes
    to find it (libyaml itself stops at 1,000 levels)."""
    parser = _CParser(text) if c else yaml.SafeLoader(text)
    try:
        depth = 0
        values = 0
        documents = 0
        while parser.check_event():
            event = parser.get_event()
            if isinstance(event, yaml.AliasEvent):
                raise _YamlRefusal(
                    "aliases (*name) are not allowed in a rule set", event.start_mark
                )
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise _YamlRefusal(
                        "a rule set is one YAML document (found a second)", event.start_mark
                    )
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
                continue
            if not isinstance(event, yaml.NodeEvent):
                continue
            if event.anchor is not None:
                raise _YamlRefusal(
                    "anchors (&name) are not allowed in a rule set", event.start_mark
                )
            tag = getattr(event, "tag", None)
            if tag is not None and tag not in _EXPLICIT_TAGS:
                raise _YamlRefusal(
                    f"the tag {_short_tag(tag)} is not allowed in a rule set (write the value "
                    "plainly, text in quotes)",
                    event.start_mark,
                )
            values += 1
            if values > MAX_VALUES:
                raise _YamlRefusal(
                    f"more than {MAX_VALUES} values; the limit is {MAX_VALUES} ({LIMITS_DOC})",
                    event.start_mark,
                )
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_NESTING:
                    raise _YamlRefusal(
                        f"nested deeper than {MAX_NESTING} levels ({LIMITS_DOC})", event.start_mark
                    )
    finally:
        parser.dispose()


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


# -- parsing: JSON -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _UnreadNumber:
    """A JSON number this loader does not convert: too long, or beyond what Decimal holds."""

    text: str


def _json_int(text: str) -> int | _UnreadNumber:
    return int(text) if len(text) <= MAX_NUMBER_CHARS else _UnreadNumber(text)


def _json_decimal(text: str) -> Decimal | _UnreadNumber:
    if len(text) > MAX_NUMBER_CHARS:
        return _UnreadNumber(text)
    try:
        return Decimal(text)
    except ArithmeticError:
        return _UnreadNumber(text)


class _JsonRefusal(ValueError):
    """What json.loads accepts and a rule set does not: `token` is the constant (NaN,
    Infinity, -Infinity), or None for a duplicate key."""

    def __init__(self, message: str, token: str | None = None) -> None:
        super().__init__(message)
        self.token = token


def _parse_json(text: str, name: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise _JsonRefusal(f"duplicate key {shown(key)}")
            result[key] = value
        return result

    def no_constants(token: str) -> Any:
        raise _JsonRefusal(f"{token} is not a number", token)

    try:
        return json.loads(
            text,
            parse_int=_json_int,
            parse_float=_json_decimal,
            parse_constant=no_constants,
            object_pairs_hook=no_duplicates,
        )
    except json.JSONDecodeError as exc:
        raise RuleSetError(
            [f"{name}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}"], name
        ) from None
    except _JsonRefusal as exc:
        spot = _json_spot(text, exc.token)
        where = f"{name}:{spot[0]}:{spot[1]}" if spot else name
        raise RuleSetError([f"{where}: not valid JSON: {exc}"], name) from None
    except RecursionError:
        spot = _json_too_deep(text)
        where = f"{name}:{spot[0]}:{spot[1]}" if spot else name
        raise RuleSetError(
            [f"{where}: nested deeper than {MAX_NESTING} levels ({LIMITS_DOC})"], name
        ) from None


def _small(document: Any) -> bool:
    """Whether `document` is within MAX_VALUES values and MAX_NESTING levels (then reading it
    again for its marks is cheap)."""
    values = 0
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        values += 1
        if values > MAX_VALUES or depth > MAX_NESTING + 1:
            return False
        if isinstance(value, dict):
            values += len(value)
            stack.extend((child, depth + 1) for child in value.values())
        elif isinstance(value, list):
            stack.extend((child, depth + 1) for child in value)
    return True


def _json_spot(text: str, token: str | None) -> Mark | None:
    """Line and column of a JSON constant `token` (NaN, Infinity), or of the first duplicate key
    when `token` is None, found in the parser's events (YAML reads JSON); None when not found
    within a bounded number of events."""
    try:
        parser = _CParser(text) if use_libyaml else yaml.SafeLoader(text)
        try:
            # Per open collection: the keys of a mapping (None for a list), and whether the
            # next node of a mapping is a key.
            open_: list[tuple[set[str] | None, list[bool]]] = []
            events = 0
            while parser.check_event() and events < 4 * MAX_VALUES:
                event = parser.get_event()
                events += 1
                key_of: set[str] | None = None
                if open_ and open_[-1][0] is not None:
                    keys, expecting = open_[-1]
                    if isinstance(event, yaml.NodeEvent):
                        if expecting[0]:
                            key_of = keys
                        expecting[0] = not expecting[0]
                if isinstance(event, yaml.ScalarEvent):
                    found = (
                        event.value in key_of
                        if key_of is not None and token is None
                        else token is not None and event.value == token and not event.style
                    )
                    if found:
                        return _spot(event.start_mark)
                    if key_of is not None:
                        key_of.add(event.value)
                elif isinstance(event, yaml.MappingStartEvent):
                    open_.append((set(), [True]))
                elif isinstance(event, yaml.SequenceStartEvent):
                    open_.append((None, [False]))
                elif isinstance(event, yaml.CollectionEndEvent) and open_:
                    open_.pop()
        finally:
            parser.dispose()
    except Exception:  # positions are a courtesy
        return None
    return None


def _spot(mark: Any) -> Mark:
    return mark.line + 1, mark.column + 1


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _json_too_deep(text: str) -> Mark | None:
    """Line and column of the first bracket that opens a level past MAX_NESTING, strings
    skipped (json.loads stops at ~1,000 levels without saying where)."""
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        bracket = match.group()
        if bracket in "[{":
            depth += 1
            if depth > MAX_NESTING:
                start = match.start()
                line_start = text.rfind("\n", 0, start) + 1
                return text.count("\n", 0, start) + 1, start - line_start + 1
        elif bracket in "]}":
            depth -= 1
    return None


def _json_marks(text: str) -> _Marks:
    """Lines and columns for a JSON rule set's messages, best effort: valid JSON of bounded
    size and depth (checked before) is read again as YAML's flow style, which it is, for the
    marks alone. Where YAML disagrees, messages give key paths without lines."""
    marks = _Marks()
    # YAML refuses surrogate escapes that JSON takes: each becomes another escape of the same
    # length, so every position stays where it was.
    text = _SURROGATE_ESCAPE.sub(r"\\u0020", text)
    try:
        loader = _CLoader(text) if use_libyaml else _PyLoader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
        if node is not None:
            _collect_marks(node, text, marks)
    except Exception:  # positions are a courtesy: the JSON was read already
        return _Marks()
    return marks


# -- checking ----------------------------------------------------------------------------------


def _shape_problems(document: Any, name: str, marks: _Marks) -> list[str]:
    """What a document of any origin (YAML, JSON, code) must be before the schema looks at it:
    a mapping, nested at most MAX_NESTING deep, at most MAX_VALUES values, text keys, text
    without lone surrogates, numbers that were read (finite, not too long)."""
    if not isinstance(document, dict):
        return [f"{name}: a rule set is a mapping with version, rules and custom"]
    problems: list[str] = []
    values = 0
    stack: list[tuple[Any, Path_, int]] = [(document, (), 1)]
    while stack and len(problems) <= MAX_PROBLEMS:
        value, path, depth = stack.pop()
        values += 1
        if values > MAX_VALUES:
            problems.append(f"{name}: more than {MAX_VALUES} values ({LIMITS_DOC})")
            break
        problem: str | None = None
        if isinstance(value, dict | list) and depth > MAX_NESTING:
            problem = f"nested deeper than {MAX_NESTING} levels ({LIMITS_DOC})"
        elif isinstance(value, dict):
            values += len(value)  # the keys: YAML counts them as values too
            for key, child in value.items():
                if not isinstance(key, str):
                    problem = f"a key must be text, not {shown(key)}"
                elif (bad := _not_text(key)) is not None:
                    problem = f"a key {bad}"
                else:
                    stack.append((child, (*path, key), depth + 1))
        elif isinstance(value, list):
            for index in range(len(value) - 1, -1, -1):
                stack.append((value[index], (*path, index), depth + 1))
        elif isinstance(value, str):
            problem = _not_text(value)
        elif isinstance(value, _UnreadNumber):
            problem = _long_number(value.text)
        elif isinstance(value, float | Decimal):
            if not math.isfinite(value):
                problem = f"{shown(value)} is not a finite number"
        elif isinstance(value, int) and not isinstance(value, bool):
            if value.bit_length() > 4 * MAX_NUMBER_CHARS:  # read from code: never printed whole
                problem = f"an integer of {value.bit_length()} bits ({LIMITS_DOC})"
        elif value is not None and not isinstance(value, bool):
            problem = f"a value of type {type(value).__name__} is not allowed"
        if problem is not None:
            problems.append(f"{marks.where(name, path)}: {problem}")
    return problems


def _not_text(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds a lone surrogate (\\u{ord(text[exc.start]):04x}), which is not text"
    return None


@cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = ruleset_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _schema_problems(document: Any, name: str, marks: _Marks) -> list[str]:
    problems: list[tuple[str, str]] = []
    for error in _validator().iter_errors(document):
        path: Path_ = tuple(error.absolute_path)
        key = False
        message = _schema_message(error)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(_schema_of(error).get("properties", {}))
            extra = sorted(str(k) for k in error.instance if k not in allowed)
            if extra:
                path = (*path, extra[0])
                key = True
        problems.append((_dotted(path), f"{marks.where(name, path, key)}: {message}"))
        if len(problems) > 5 * MAX_PROBLEMS:
            break
    return [text for _, text in sorted(problems)]


def _schema_of(error: jsonschema.ValidationError) -> Mapping[str, Any]:
    return error.schema if isinstance(error.schema, Mapping) else {}


def _schema_message(error: jsonschema.ValidationError) -> str:
    """The validator's message, with the value cut short: a 400 KB string is not quoted."""
    validator = error.validator
    instance = error.instance
    value = error.validator_value
    schema = _schema_of(error)
    if validator == "additionalProperties" and isinstance(instance, dict):
        allowed = set(schema.get("properties", {}))
        extra = sorted(str(k) for k in instance if k not in allowed)
        if extra:
            return f"unknown key {shown(extra[0])} (known: {', '.join(sorted(allowed))})"
    if validator == "anyOf" and "description" in schema:
        return f"{shown(instance)} is not {schema['description']}"
    if validator == "type":
        hint = " (write it in quotes)" if value == "string" else ""
        return f"{shown(instance)} is not of type {value!r}{hint}"
    if validator == "enum":
        return f"{shown(instance)} is not one of {value!r}"
    if validator == "pattern":
        return f"{shown(instance)} does not match {value!r}"
    if validator in ("maxLength", "minLength") and isinstance(instance, str):
        size = "at most" if validator == "maxLength" else "at least"
        return f"{len(instance)} characters; it must have {size} {value} ({LIMITS_DOC})"
    if validator == "maxItems" and isinstance(instance, list):
        return f"{len(instance)} items; the limit is {value} ({LIMITS_DOC})"
    if validator in _BOUND_WORDS:
        return f"{shown(instance)} is {_BOUND_WORDS[validator]} {value} ({LIMITS_DOC})"
    return _cut(error.message, 200)


_BOUND_WORDS = {
    "minimum": "less than the minimum of",
    "maximum": "greater than the maximum of",
    "exclusiveMinimum": "less than or equal to the minimum of",
    "exclusiveMaximum": "greater than or equal to the maximum of",
}


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else f"{text[: width - 3]}..."


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
                except ValueError as exc:
                    problems.append(f"{marks.where(name, ('rules', rule, param))}: {exc}")
    return dataclasses.replace(
        defaults, **fields, severities=severities, enabled=frozenset(enabled)
    )


def _model_entry(
    rules: Mapping[str, Mapping[str, Any]], name: str, marks: _Marks, problems: list[str]
) -> ModelScoreEntry | None:
    """`rules.model_score` (already checked by the schema: threshold 0-100, a severity)."""
    entry = rules.get(MODEL_RULE_ID)
    if entry is None:
        return None
    threshold = entry.get("threshold")
    if isinstance(threshold, Decimal) and decimal_places(threshold) > MAX_PLACES:
        where = marks.where(name, ("rules", MODEL_RULE_ID, "threshold"))
        problems.append(f"{where}: more than {MAX_PLACES} decimal places ({LIMITS_DOC})")
        threshold = None
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
