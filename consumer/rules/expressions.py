"""The `when` language of custom rules: a small, safe expression over one transaction.

Decision: Python's own parser (`ast.parse(mode="eval")`) with a strict whitelist of node types,
compiled once into closures; nothing is ever handed to `eval`/`compile` (the alternatives:
docs/rules-as-data.md#why-pythons-parser-and-a-whitelist-not-lark-not-eval).
- The syntax analysts write (`amount > 5000 and txn_count_1h >= 3 and channel == "online"`):
  `and`/`or`/`not`, chained comparisons, `in [...]`, parentheses and arithmetic are exactly
  Python's, so the standard library's parser (maintained, fuzzed, with precise positions on
  every node) parses it, and a second grammar would only restate it.
- Safety comes from the whitelist, not from the parser: the tree is walked and every node that
  is not a literal, a known name, a boolean operator, a comparison, `+ - * /` or a literal list
  after `in` is refused with its position. Calls, attributes, subscripts, lambdas,
  comprehensions, `:=`, f-strings and everything else never become code. The source is also
  capped in length and nesting depth, so the parser and this compiler stay within bounds.
- Types are checked at load time: every name has a FieldType, so `channel > 5`,
  `amount and new_device`, `currency + 1`, `channel == "onlin"` are refused before a rule set
  goes live, never discovered on the hot path.
- Speed: each node becomes one closure (a comparison with a literal is one call), so a typical
  rule costs little per transaction (measured: docs/rules-as-data.md#cost). Cost limits: at most
  MAX_LENGTH characters, MAX_DEPTH levels, MAX_NODES expression nodes and MAX_LIST_ITEMS items
  in a list after `in` (docs/rules-as-data.md#limits; the rule set's own in ruleset_load.py).

Semantics:
- Numbers: a literal is the Decimal of its text (`0.1` is 0.1, not the nearest float); amounts,
  balances and sums are Decimal; comparisons between exact numbers are always exact, whatever
  their digits. Arithmetic runs in a bounded decimal context (ARITHMETIC: PRECISION = 72
  significant digits, exponents within +-999,999), so no accepted condition and no valid record
  makes an operation slow or huge:
  - exact: every sum and difference of bounded numbers (literals, amounts, balances: at most
    1e15 in size and multiples of 1e-18, so at most 34 digits; the history sums, the counts,
    hour_of_day), any product of two of them and sums of such products: results of at most 72
    digits are never rounded;
  - rounded (half-even, to 72 significant digits): a result that needs more (a product of three
    long numbers, say); `/`, to 34 significant digits (decimal128), absent when dividing by zero;
    and an operand with more than 72 digits (account_age_s with a long event-time fraction, an
    amount written with zeros past the 18th decimal place) is rounded to 72 before the
    operation (Feature.long_digits);
  - a result below 1e-999999 in size rounds to zero; one above 9.99e999999 raises
    EvaluationError, the one exception `Expression.test` lets out by design (the caller counts
    the rule as not fired). Literals are within +-1e15 with at most 18 decimal places, record
    numbers within the record bounds, and a condition has at most MAX_NODES nodes, so results
    stay below about 1e2000; only an extreme account_age_s (an event-time fraction or an
    epoch-millisecond integer of tens of thousands of digits, then divided by) can reach it.
  Distances, speeds and coordinates are floats; arithmetic that mixes them with exact numbers is
  done in float (overflow gives infinity, inf - inf is absent), comparisons stay exact.
- A field may be absent (no `account_balance`, no `channel`, no previous location). Arithmetic
  with an absent value is absent, and every comparison with an absent value is false (`!=` and
  `not in` too), as the contract rules read "both present and ...". Test absence with
  `x is None` / `x is not None` (`null` may be written for `None`, `true`/`false` for
  `True`/`False`).
- Country literals compared with a country field are upper-cased (the record upper-cases the
  field); a literal compared with `channel` must be one of its four values.
- Comments (`#`) are refused: in one line they would silently drop the rest of the condition.
"""

from __future__ import annotations

import ast
import difflib
import io
import operator
import tokenize
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import (
    Context,
    Decimal,
    DecimalException,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)
from typing import Any

from consumer.errors import FraudstreamError
from consumer.rules.config import LIMITS_DOC, LITERAL_MAX, MAX_PLACES, decimal_places
from consumer.rules.features import BOOL, FEATURES, Facts, Feature, FieldType

# Cost limits of one condition (docs/rules-as-data.md#limits); the rule set's own (how many
# rules, expression nodes in all) are in consumer/rules/ruleset_load.py.
MAX_LENGTH = 2000  # characters
MAX_DEPTH = 40  # levels of the syntax tree
MAX_NODES = 100  # expression nodes (names, literals, operators, comparisons; a list is one)
MAX_LIST_ITEMS = 300  # items of a list after `in` / `not in`

# The evaluation contexts: bounded precision and exponent range, so no accepted condition and
# no valid record makes an operation slow or huge. PRECISION digits hold every sum and
# difference of bounded numbers (|x| <= 1e15, multiples of 1e-18: at most 34 digits) exactly,
# every product of two of them (at most 68) and sums of such products; division keeps 34 digits
# (decimal128). Overflow past EMAX is trapped (EvaluationError); a result below EMIN rounds
# towards zero, silently.
PRECISION = 72
EMAX = 999_999
EMIN = -999_999
_TRAPS = [Overflow, InvalidOperation, DivisionByZero]
ARITHMETIC = Context(prec=PRECISION, Emax=EMAX, Emin=EMIN, traps=_TRAPS)
_DIVIDE = Context(prec=34, Emax=EMAX, Emin=EMIN, traps=_TRAPS)

Getter = Callable[[Facts], Any]
_NOT_CONST: Any = object()


class EvaluationError(FraudstreamError, ArithmeticError):
    """A condition's arithmetic left the evaluation context (a result beyond 1e999999 in
    magnitude) on one transaction: the only exception `Expression.test` raises by design. No
    accepted condition reaches it with a valid record; the caller counts the rule as not fired."""


class ExpressionError(FraudstreamError, ValueError):
    """A `when` expression is refused; the message points at the spot with a caret excerpt.

    `line` and `column` are 1-based, in the expression's own text; `offset` is 0-based.
    """

    def __init__(self, reason: str, source: str, start: int, end: int | None = None) -> None:
        start = max(0, min(start, len(source)))
        end = start + 1 if end is None or end <= start else min(end, len(source))
        line_start = source.rfind("\n", 0, start) + 1
        line_end = source.find("\n", start)
        if line_end < 0:
            line_end = len(source)
        self.reason = reason
        self.offset = start
        self.line = source.count("\n", 0, start) + 1
        self.column = start - line_start + 1
        text = source[line_start:line_end].rstrip("\r").replace("\t", " ")
        caret_at = start - line_start
        width = max(1, min(end, line_end) - start)
        if len(text) > 100:  # show the neighbourhood of a long line only
            cut = max(0, caret_at - 50)
            text = ("..." if cut else "") + text[cut : cut + 100]
            caret_at = caret_at - cut + (3 if cut else 0)
            width = min(width, 100)
        self.excerpt = f"    {text}\n    {' ' * caret_at}{'^' * width}"
        super().__init__(f"line {self.line}, column {self.column}: {reason}\n{self.excerpt}")


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled `when` condition: `test(facts)` is True when the rule fires."""

    source: str
    # The field and feature names it reads, in order of first appearance.
    names: tuple[str, ...]
    test: Callable[[Facts], bool]
    # Expression nodes (MAX_NODES counts them): what the rule set's total limit adds up.
    nodes: int = 0


def compile_expression(source: str, fields: Mapping[str, Feature] = FEATURES) -> Expression:
    """Parse, check and compile `source`; raise ExpressionError pointing at what is wrong."""
    if not isinstance(source, str):
        raise ExpressionError("a `when` condition must be a string", "", 0)
    if len(source) > MAX_LENGTH:
        raise ExpressionError(f"longer than {MAX_LENGTH} characters", source, MAX_LENGTH)
    if not source.strip():
        raise ExpressionError("the condition is empty", source, 0)
    try:
        source.encode()
    except UnicodeEncodeError as exc:  # a lone surrogate, as JSON's "\ud800" gives
        raise ExpressionError(
            f"not text: a lone surrogate (\\u{ord(source[exc.start]):04x})", source, exc.start
        ) from None
    if "\0" in source:
        raise ExpressionError("a NUL character is not allowed", source, source.find("\0"))
    # One line for the parser, same character offsets: line breaks become spaces, so a
    # condition may span lines (a YAML block) without Python's statement rules.
    flat = source.replace("\r", " ").replace("\n", " ")
    try:
        with warnings.catch_warnings():
            # `5and x` parses with a warning ("invalid decimal literal"): refused instead, and
            # nothing is printed on a worker's stderr.
            warnings.simplefilter("error", SyntaxWarning)
            tree = ast.parse(flat, mode="eval")
    except SyntaxError as exc:
        start = (exc.offset or 1) - 1
        end = (exc.end_offset or 0) - 1 if exc.end_offset else None
        raise ExpressionError(f"syntax error: {exc.msg}", source, start, end) from None
    except ValueError as exc:  # unforeseen text the parser refuses this way
        raise ExpressionError(f"syntax error: {exc}", source, 0) from None
    except (RecursionError, MemoryError):
        raise ExpressionError("nested too deeply", source, 0) from None
    _refuse_comments(flat, source)
    compiler = _Compiler(source, flat, fields)
    nodes = compiler.check_size(tree.body)
    top = compiler.compile(tree.body)
    if top.const is not _NOT_CONST and top.is_none:
        raise compiler.error(tree.body, "a `when` condition must be true or false, not None")
    if top.type.kind != "bool":
        raise compiler.error(
            tree.body, f"a `when` condition must be true or false; this is {top.type.describe()}"
        )
    test = _guarded(top.fn, source) if compiler.arithmetic else top.fn
    return Expression(source, tuple(compiler.names), test, nodes)


def _guarded(fn: Getter, source: str) -> Callable[[Facts], bool]:
    """`fn`, with a decimal signal (overflow past EMAX) turned into EvaluationError."""

    def test(facts: Facts) -> bool:
        try:
            result: bool = fn(facts)
        except DecimalException as exc:
            raise EvaluationError(
                f"arithmetic beyond the evaluation context ({type(exc).__name__}) in "
                f"{source[:80]!r}"
            ) from None
        return result

    return test


def _refuse_comments(flat: str, source: str) -> None:
    if "#" not in flat:  # no comment without one (tokenizing is slow: docs/rules-as-data.md#cost)
        return
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(flat).readline))
    except (tokenize.TokenError, SyntaxError):  # the parser accepted it; nothing to find
        return
    for token in tokens:
        if token.type == tokenize.COMMENT:
            start = token.start[1]
            raise ExpressionError(
                "comments (#) are not allowed in a condition (the rule's description says why)",
                source,
                start,
                len(flat),
            )


@dataclass(frozen=True, slots=True)
class _Node:
    fn: Getter
    type: FieldType
    const: Any = _NOT_CONST
    is_none: bool = False  # the literal None
    feature: Feature | None = None  # a bare field or feature name


_REFUSED: dict[type[ast.AST], str] = {
    ast.Call: "function calls are not allowed",
    ast.Attribute: "attribute access (.) is not allowed",
    ast.Subscript: "subscripts ([...]) are not allowed",
    ast.Slice: "subscripts ([...]) are not allowed",
    ast.Lambda: "lambdas are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.IfExp: "conditional expressions (a if c else b) are not allowed",
    ast.NamedExpr: "assignments (:=) are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.Dict: "dictionaries are not allowed",
    ast.Starred: "* unpacking is not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.List: "a list is only allowed after `in` / `not in`",
    ast.Tuple: "a list is only allowed after `in` / `not in`",
    ast.Set: "a list is only allowed after `in` / `not in`",
}

_SYMBOLS: dict[type[ast.AST], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.Invert: "~",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
}

_ORDER: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_EQUALITY: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


def _contains(value: Any, members: frozenset[Any]) -> bool:
    return value in members


def _not_contains(value: Any, members: frozenset[Any]) -> bool:
    return value not in members


def _is_none(value: Any, _: Any) -> bool:
    return value is None


def _is_not_none(value: Any, _: Any) -> bool:
    return value is not None


def _exact_divide(a: Any, b: Any) -> Any:
    if b == 0:
        return None
    return _DIVIDE.divide(a, b)


def _rounded(get: Getter) -> Getter:
    """A feature whose values may carry any number of digits (Feature.long_digits), rounded to
    PRECISION digits before arithmetic, so that an operation never works on more digits than
    that (a no-op on up to 72 digits). Comparisons read the exact value."""
    plus = ARITHMETIC.plus

    def rounded(facts: Facts) -> Any:
        value = get(facts)
        return None if value is None else plus(value)

    return rounded


def _float_op(op: Callable[[float, float], float]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        result = op(float(a), float(b))
        return None if result != result else result  # NaN (inf - inf) is absent

    return apply


def _float_divide(a: Any, b: Any) -> Any:
    divisor = float(b)
    if divisor == 0.0:
        return None
    result = float(a) / divisor
    return None if result != result else result


_EXACT_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: ARITHMETIC.add,
    ast.Sub: ARITHMETIC.subtract,
    ast.Mult: ARITHMETIC.multiply,
    ast.Div: _exact_divide,
}
_FLOAT_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: _float_op(operator.add),
    ast.Sub: _float_op(operator.sub),
    ast.Mult: _float_op(operator.mul),
    ast.Div: _float_divide,
}

_OUTSIDE = (
    f"a number in a condition is at most 1e15 in size, with at most {MAX_PLACES} decimal places "
    f"({LIMITS_DOC})"
)

_NONE_TYPE = FieldType("bool", nullable=True)  # placeholder type of the literal None
_STRING = FieldType("string")
_NUMBER = FieldType("number")
_FLOAT = FieldType("number", exact=False)


def _constant(value: Any) -> Getter:
    def get(_: Facts) -> Any:
        return value

    return get


class _Compiler:
    def __init__(self, source: str, flat: str, fields: Mapping[str, Feature]) -> None:
        self.source = source
        self.flat = flat
        self.fields = fields
        self.names: list[str] = []
        # Whether any arithmetic (+ - * /, unary -) is evaluated per transaction.
        self.arithmetic = False
        self._ascii = flat.isascii()
        self._encoded = flat.encode()

    # -- positions -----------------------------------------------------------------------------

    def _chars(self, byte_offset: int) -> int:
        """ast columns count UTF-8 bytes; messages count characters."""
        if self._ascii:
            return byte_offset
        return len(self._encoded[:byte_offset].decode("utf-8", errors="ignore"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        start = self._chars(getattr(node, "col_offset", 0))
        end_offset = getattr(node, "end_col_offset", None)
        end = self._chars(end_offset) if end_offset is not None else start + 1
        return start, end

    def error(self, node: ast.AST, reason: str) -> ExpressionError:
        start, end = self.span(node)
        return ExpressionError(reason, self.source, start, end)

    def check_size(self, root: ast.AST) -> int:
        """The tree's expression nodes, after checking the limits on depth, nodes and list
        sizes (a list after `in` counts as one node: a set lookup, whatever its size)."""
        members: set[int] = set()
        nodes = 0
        stack: list[tuple[ast.AST, int]] = [(root, 1)]
        while stack:
            node, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise self.error(node, f"nested more than {MAX_DEPTH} levels deep")
            if isinstance(node, ast.expr):
                nodes += 1
            if isinstance(node, ast.Compare):
                for op, right in zip(node.ops, node.comparators, strict=True):
                    if isinstance(op, ast.In | ast.NotIn):
                        members.add(id(right))
            if id(node) in members and isinstance(node, ast.List | ast.Tuple | ast.Set):
                if len(node.elts) > MAX_LIST_ITEMS:
                    raise self.error(
                        node,
                        f"the list has {len(node.elts)} items; the limit is {MAX_LIST_ITEMS} "
                        f"({LIMITS_DOC})",
                    )
                continue  # its items are literals, checked one by one when compiled
            # Expressions only: operators and contexts (Load) are no level of their own, and
            # the compiler descends through expressions alone.
            stack.extend(
                (child, depth + 1)
                for child in ast.iter_child_nodes(node)
                if isinstance(child, ast.expr)
            )
        if nodes > MAX_NODES:
            raise ExpressionError(
                f"the condition has {nodes} expression nodes; the limit is {MAX_NODES} "
                f"({LIMITS_DOC})",
                self.source,
                0,
                len(self.source),
            )
        return nodes

    # -- nodes ---------------------------------------------------------------------------------

    def compile(self, node: ast.AST) -> _Node:
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.BoolOp):
            return self._bool_op(node)
        if isinstance(node, ast.UnaryOp):
            return self._unary(node)
        if isinstance(node, ast.BinOp):
            return self._binary(node)
        if isinstance(node, ast.Compare):
            return self._compare(node)
        reason = _REFUSED.get(type(node), f"{type(node).__name__} is not allowed in a condition")
        raise self.error(node, reason)

    def _constant(self, node: ast.Constant) -> _Node:
        value = node.value
        if value is None:
            return _Node(_constant(None), _NONE_TYPE, None, is_none=True)
        if isinstance(value, bool):
            return _Node(_constant(value), BOOL, value)
        if isinstance(value, int):
            if not -LITERAL_MAX <= value <= LITERAL_MAX:
                raise self.error(node, _OUTSIDE)
            return _Node(_constant(value), _NUMBER, value)
        if isinstance(value, float):
            start, end = self.span(node)
            try:
                exact = Decimal(self.flat[start:end])  # the literal as written, not the float
            except InvalidOperation:  # an exponent beyond what Decimal holds
                raise self.error(node, _OUTSIDE) from None
            if (
                not exact.is_finite()
                or not -LITERAL_MAX <= exact <= LITERAL_MAX
                or decimal_places(exact) > MAX_PLACES
            ):
                raise self.error(node, _OUTSIDE)
            return _Node(_constant(exact), _NUMBER, exact)
        if isinstance(value, str):
            return _Node(_constant(value), _STRING, value)
        if isinstance(value, complex):
            raise self.error(node, "imaginary numbers are not allowed")
        if isinstance(value, bytes):
            raise self.error(node, "byte strings are not allowed; write a plain string")
        raise self.error(node, f"the literal {value!r} is not allowed")

    def _name(self, node: ast.Name) -> _Node:
        name = node.id
        if name in ("true", "false"):
            return _Node(_constant(name == "true"), BOOL, name == "true")
        if name == "null":
            return _Node(_constant(None), _NONE_TYPE, None, is_none=True)
        feature = self.fields.get(name)
        if feature is None:
            close = difflib.get_close_matches(name, list(self.fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.error(node, f"unknown field {name!r}{hint}")
        if name not in self.names:
            self.names.append(name)
        return _Node(feature.get, feature.type, feature=feature)

    def _expect_bool(self, node: ast.AST, compiled: _Node, what: str) -> None:
        if compiled.is_none or compiled.type.kind != "bool":
            shown = "None" if compiled.is_none else compiled.type.describe()
            raise self.error(node, f"{what} needs true or false, but this is {shown}")

    def _expect_number(self, node: ast.AST, compiled: _Node, what: str) -> None:
        if compiled.is_none or compiled.type.kind != "number":
            shown = "None" if compiled.is_none else compiled.type.describe()
            raise self.error(node, f"{what} needs numbers, but this is {shown}")

    def _bool_op(self, node: ast.BoolOp) -> _Node:
        word = "and" if isinstance(node.op, ast.And) else "or"
        parts = [self.compile(value) for value in node.values]
        for value, part in zip(node.values, parts, strict=True):
            self._expect_bool(value, part, f"`{word}`")
        fns = tuple(part.fn for part in parts)
        fn: Getter
        if isinstance(node.op, ast.And):
            if len(fns) == 2:
                a, b = fns

                def fn(facts: Facts) -> Any:
                    return a(facts) and b(facts)
            else:

                def fn(facts: Facts) -> Any:
                    for part in fns:  # noqa: SIM110 (a loop is faster than all(generator))
                        if not part(facts):
                            return False
                    return True
        elif len(fns) == 2:
            a, b = fns

            def fn(facts: Facts) -> Any:
                return a(facts) or b(facts)
        else:

            def fn(facts: Facts) -> Any:
                for part in fns:  # noqa: SIM110 (a loop is faster than any(generator))
                    if part(facts):
                        return True
                return False

        return _Node(fn, BOOL)

    def _unary(self, node: ast.UnaryOp) -> _Node:
        operand = self.compile(node.operand)
        if isinstance(node.op, ast.Not):
            self._expect_bool(node.operand, operand, "`not`")
            if operand.const is not _NOT_CONST:
                return _Node(_constant(not operand.const), BOOL, not operand.const)
            inner = operand.fn

            def negated(facts: Facts) -> bool:
                return not inner(facts)

            return _Node(negated, BOOL)
        if isinstance(node.op, ast.USub | ast.UAdd):
            symbol = "-" if isinstance(node.op, ast.USub) else "+"
            self._expect_number(node.operand, operand, f"unary {symbol}")
            if isinstance(node.op, ast.UAdd):
                return operand
            if operand.const is not _NOT_CONST:
                value = operand.const
                minus = -value if isinstance(value, int) else ARITHMETIC.minus(value)
                return _Node(_constant(minus), operand.type, minus)
            inner = self._operand(operand)
            exact = operand.type.exact
            self.arithmetic = True
            negate = ARITHMETIC.minus

            def minus_fn(facts: Facts) -> Any:
                value = inner(facts)
                if value is None:
                    return None
                return negate(value) if exact else -value

            return _Node(minus_fn, operand.type)
        raise self.error(node, f"operator {_SYMBOLS.get(type(node.op), '?')} is not allowed")

    def _binary(self, node: ast.BinOp) -> _Node:
        symbol = _SYMBOLS.get(type(node.op), "?")
        if type(node.op) not in _EXACT_ARITHMETIC:
            raise self.error(node, f"operator {symbol} is not allowed (only + - * /)")
        left = self.compile(node.left)
        right = self.compile(node.right)
        self._expect_number(node.left, left, f"`{symbol}`")
        self._expect_number(node.right, right, f"`{symbol}`")
        exact = left.type.exact and right.type.exact
        op = (_EXACT_ARITHMETIC if exact else _FLOAT_ARITHMETIC)[type(node.op)]
        divides = isinstance(node.op, ast.Div)
        result_type = FieldType(
            "number", nullable=left.type.nullable or right.type.nullable or divides, exact=exact
        )
        if divides and right.const is not _NOT_CONST and right.const == 0:
            raise self.error(node, "division by zero")
        if left.const is not _NOT_CONST and right.const is not _NOT_CONST:
            try:
                value = op(left.const, right.const)
            except DecimalException:  # unreachable within the literal limits
                raise self.error(node, f"the result is beyond 1e{EMAX} in size") from None
            if value is None:
                raise self.error(node, "division by zero")
            return _Node(_constant(value), FieldType("number", exact=exact), value)
        self.arithmetic = True
        lf, rf = self._operand(left), self._operand(right)
        fn: Getter
        if left.type.nullable or right.type.nullable:

            def fn(facts: Facts) -> Any:
                a = lf(facts)
                if a is None:
                    return None
                b = rf(facts)
                if b is None:
                    return None
                return op(a, b)
        elif right.const is not _NOT_CONST:
            constant = right.const

            def fn(facts: Facts) -> Any:
                return op(lf(facts), constant)
        else:

            def fn(facts: Facts) -> Any:
                return op(lf(facts), rf(facts))

        return _Node(fn, result_type)

    @staticmethod
    def _operand(compiled: _Node) -> Getter:
        """How an arithmetic operand is read: a feature of unbounded digits rounded first."""
        feature = compiled.feature
        if feature is not None and feature.long_digits:
            return _rounded(compiled.fn)
        return compiled.fn

    # -- comparisons ---------------------------------------------------------------------------

    def _compare(self, node: ast.Compare) -> _Node:
        operands: list[ast.expr] = [node.left, *node.comparators]
        left = self.compile(node.left)
        compiled: list[_Node] = [left]
        # (operator, does absence make the pair false)
        pairs: list[tuple[Callable[[Any, Any], bool], bool]] = []
        for index, op in enumerate(node.ops):
            right_node = operands[index + 1]
            previous = compiled[-1]
            previous_node = operands[index]
            if isinstance(op, ast.In | ast.NotIn):
                right = self._member_list(right_node, previous_node, previous, op)
                pairs.append((_contains if isinstance(op, ast.In) else _not_contains, True))
            elif isinstance(op, ast.Is | ast.IsNot):
                right = self.compile(right_node)
                self._check_is(node, previous_node, previous, right_node, right, op)
                pairs.append((_is_none if isinstance(op, ast.Is) else _is_not_none, False))
            else:
                right = self.compile(right_node)
                self._check_pair(node, op, previous_node, previous, right_node, right)
                # A literal on either side of a country / channel field: normalise and check.
                if right.const is not _NOT_CONST and previous.feature is not None:
                    right = self._literal_for(previous, right_node, right)
                elif previous.const is not _NOT_CONST and right.feature is not None:
                    compiled[-1] = self._literal_for(right, previous_node, previous)
                table = _ORDER if type(op) in _ORDER else _EQUALITY
                pairs.append((table[type(op)], True))
            compiled.append(right)
        return _Node(self._chain(compiled, pairs), BOOL)

    def _check_pair(
        self,
        node: ast.Compare,
        op: ast.cmpop,
        left_node: ast.expr,
        left: _Node,
        right_node: ast.expr,
        right: _Node,
    ) -> None:
        symbol = _SYMBOLS[type(op)]
        for side_node, side in ((left_node, left), (right_node, right)):
            if side.is_none:
                raise self.error(
                    side_node, f"compare with None using `is None` / `is not None`, not {symbol}"
                )
        kinds = (left.type.kind, right.type.kind)
        if kinds[0] != kinds[1]:
            raise self.error(
                node,
                f"cannot compare {left.type.describe()} with {right.type.describe()} "
                f"using {symbol}",
            )
        if type(op) in _ORDER and kinds[0] != "number":
            raise self.error(node, f"{symbol} needs numbers; {left.type.describe()} has no order")

    def _check_is(
        self,
        node: ast.Compare,
        left_node: ast.expr,
        left: _Node,
        right_node: ast.expr,
        right: _Node,
        op: ast.cmpop,
    ) -> None:
        symbol = _SYMBOLS[type(op)]
        if not right.is_none:
            raise self.error(
                right_node, f"`{symbol}` only tests for absence: write `x {symbol} None`"
            )
        if left.is_none or left.const is not _NOT_CONST:
            raise self.error(left_node, f"`{symbol} None` needs a field on its left")
        if not left.type.nullable:
            raise self.error(node, "this value is never absent, so the test is always the same")

    def _literal_for(self, field: _Node, literal_node: ast.expr, literal: _Node) -> _Node:
        """A string literal compared with `field`: upper-cased for countries, and one of the
        field's values where it has a fixed set."""
        feature = field.feature
        value = literal.const
        if feature is None or not isinstance(value, str):
            return literal
        if feature.type.upper:
            value = value.upper()
        allowed = feature.type.values
        if allowed is not None and value not in allowed:
            raise self.error(
                literal_node,
                f"{feature.name} is never {value!r} (it is one of {', '.join(sorted(allowed))})",
            )
        return _Node(_constant(value), literal.type, value)

    def _member_list(
        self, list_node: ast.expr, left_node: ast.expr, left: _Node, op: ast.cmpop
    ) -> _Node:
        symbol = _SYMBOLS[type(op)]
        if not isinstance(list_node, ast.List | ast.Tuple | ast.Set):
            raise self.error(
                list_node, f'`{symbol}` needs a literal list on its right, like ["a", "b"]'
            )
        if left.is_none:
            raise self.error(left_node, f"`None {symbol}` is not allowed; use `is None`")
        if left.type.kind == "bool":
            raise self.error(left_node, f"`{symbol}` needs a number or a string on its left")
        members: set[Any] = set()
        for element in list_node.elts:
            item = self.compile(element)
            if item.const is _NOT_CONST or item.is_none:
                raise self.error(element, "a list after `in` holds literals only")
            if item.type.kind != left.type.kind:
                raise self.error(
                    element,
                    f"cannot look for {left.type.describe()} in a list with {item.type.describe()}",
                )
            if left.feature is not None:
                item = self._literal_for(left, element, item)
            members.add(item.const)
        frozen = frozenset(members)
        return _Node(_constant(frozen), left.type, frozen)

    @staticmethod
    def _chain(
        compiled: Sequence[_Node], pairs: Sequence[tuple[Callable[[Any, Any], bool], bool]]
    ) -> Getter:
        """One closure for `a op b [op c ...]`: each operand read once, left to right; a pair
        with an absent side is false (except `is None` / `is not None`)."""
        if len(pairs) == 1:
            (op, strict) = pairs[0]
            left, right = compiled
            lf = left.fn
            maybe_absent = left.type.nullable or right.type.nullable or right.is_none
            if right.const is not _NOT_CONST:
                constant = right.const
                if not strict or not left.type.nullable:

                    def one(facts: Facts) -> bool:
                        return op(lf(facts), constant)

                    return one

                def one_nullable(facts: Facts) -> bool:
                    value = lf(facts)
                    return value is not None and op(value, constant)

                return one_nullable
            rf = right.fn
            if not strict or not maybe_absent:

                def two(facts: Facts) -> bool:
                    return op(lf(facts), rf(facts))

                return two

            def two_nullable(facts: Facts) -> bool:
                a = lf(facts)
                if a is None:
                    return False
                b = rf(facts)
                return b is not None and op(a, b)

            return two_nullable

        first = compiled[0].fn
        rest = tuple(
            (op, strict, node.fn) for (op, strict), node in zip(pairs, compiled[1:], strict=True)
        )

        def chain(facts: Facts) -> bool:
            a = first(facts)
            for op, strict, get in rest:
                b = get(facts)
                if strict and (a is None or b is None):
                    return False
                if not op(a, b):
                    return False
                a = b
            return True

        return chain
