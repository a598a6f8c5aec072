"""A tiny language for promotion conditions.

Examples::

    total >= 50 and category == "books"
    not (items < 3) or "music" in categories
    region in ["DE", "AT"]

Grammar (lowest precedence first)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := operand (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in") operand)?
    operand    := NUMBER | STRING | "true" | "false" | NAME
                | "(" expr ")" | "[" [operand ("," operand)*] "]"

Numbers become :class:`~decimal.Decimal`; ints and floats in the context are
converted the same way, and :class:`~cartcalc.money.Money` values compare by
their amount.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping, Optional

from .money import Money

KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false"})
COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})
TWO_CHAR_OPS = ("==", "!=", ">=", "<=")
ONE_CHAR_OPS = "<>()[],"

Node = tuple


class RuleError(ValueError):
    """Base class for rule problems."""


class RuleSyntaxError(RuleError):
    """The rule text cannot be parsed."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.position = position


class RuleEvaluationError(RuleError):
    """The rule parsed but cannot be evaluated against the context."""


@dataclass(frozen=True)
class Token:
    kind: str  # NUMBER, STRING, NAME, KEYWORD, OP, EOF
    value: Any
    pos: int


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an ``EOF`` token."""
    tokens: list[Token] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch.isdigit() or (ch == "." and i + 1 < n and text[i + 1].isdigit()):
            start = i
            seen_dot = False
            while i < n and (text[i].isdigit() or text[i] == "."):
                if text[i] == ".":
                    if seen_dot:
                        raise RuleSyntaxError("malformed number", i)
                    seen_dot = True
                i += 1
            tokens.append(Token("NUMBER", Decimal(text[start:i]), start))
            continue
        if ch in "\"'":
            start = i
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise RuleSyntaxError("unterminated string", start)
                c = text[i]
                if c == "\\" and i + 1 < n:
                    chars.append(text[i + 1])
                    i += 2
                    continue
                i += 1
                if c == ch:
                    break
                chars.append(c)
            tokens.append(Token("STRING", "".join(chars), start))
            continue
        if ch.isalpha() or ch == "_":
            start = i
            while i < n and (text[i].isalnum() or text[i] == "_"):
                i += 1
            word = text[start:i]
            tokens.append(Token("KEYWORD" if word in KEYWORDS else "NAME", word, start))
            continue
        if text[i : i + 2] in TWO_CHAR_OPS:
            tokens.append(Token("OP", text[i : i + 2], i))
            i += 2
            continue
        if ch in ONE_CHAR_OPS:
            tokens.append(Token("OP", ch, i))
            i += 1
            continue
        raise RuleSyntaxError(f"unexpected character {ch!r}", i)
    tokens.append(Token("EOF", None, n))
    return tokens


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind != "EOF":
            self.pos += 1
        return token

    def accept(self, kind: str, value: Any = None) -> Optional[Token]:
        token = self.peek()
        if token.kind == kind and (value is None or token.value == value):
            return self.advance()
        return None

    def expect(self, kind: str, value: Any = None) -> Token:
        token = self.accept(kind, value)
        if token is None:
            raise RuleSyntaxError(f"expected {value or kind}", self.peek().pos)
        return token

    def parse(self) -> Node:
        node = self.parse_or()
        token = self.peek()
        if token.kind != "EOF":
            raise RuleSyntaxError(f"unexpected {token.value!r}", token.pos)
        return node

    def parse_or(self) -> Node:
        node = self.parse_and()
        while self.accept("KEYWORD", "or"):
            node = ("or", node, self.parse_and())
        return node

    def parse_and(self) -> Node:
        node = self.parse_not()
        while self.accept("KEYWORD", "and"):
            node = ("and", node, self.parse_not())
        return node

    def parse_not(self) -> Node:
        if self.accept("KEYWORD", "not"):
            return ("not", self.parse_not())
        return self.parse_comparison()

    def parse_comparison(self) -> Node:
        left = self.parse_operand()
        token = self.peek()
        if token.kind == "OP" and token.value in COMPARISONS:
            op = self.advance().value
        elif token.kind == "KEYWORD" and token.value == "in":
            op = self.advance().value
        else:
            return left
        return ("cmp", op, left, self.parse_operand())

    def parse_operand(self) -> Node:
        token = self.advance()
        if token.kind in ("NUMBER", "STRING"):
            return ("lit", token.value)
        if token.kind == "KEYWORD" and token.value in ("true", "false"):
            return ("lit", token.value == "true")
        if token.kind == "NAME":
            return ("name", token.value)
        if token.kind == "OP" and token.value == "(":
            node = self.parse_or()
            self.expect("OP", ")")
            return node
        if token.kind == "OP" and token.value == "[":
            items: list[Node] = []
            if not self.accept("OP", "]"):
                while True:
                    items.append(self.parse_operand())
                    if self.accept("OP", "]"):
                        break
                    self.expect("OP", ",")
            return ("list", tuple(items))
        what = "end of rule" if token.kind == "EOF" else repr(token.value)
        raise RuleSyntaxError(f"unexpected {what}", token.pos)


def _coerce(value: Any) -> Any:
    """Normalise context values so that they compare with rule literals."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, Money):
        return value.amount
    if isinstance(value, (list, set, frozenset, tuple)):
        return [_coerce(v) for v in value]
    return value


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "in":
        if isinstance(right, str):
            if not isinstance(left, str):
                raise RuleEvaluationError("'in' on a string needs a string on the left")
            return left in right
        if not isinstance(right, list):
            raise RuleEvaluationError("right side of 'in' must be a list or string")
        return left in right
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    try:
        if op == "<":
            return left < right
        if op == "<=":
            return left <= right
        if op == ">":
            return left > right
        if op == ">=":
            return left >= right
    except TypeError as exc:
        raise RuleEvaluationError(f"cannot compare {left!r} {op} {right!r}") from exc
    raise RuleEvaluationError(f"unknown operator {op!r}")


def _eval(node: Node, context: Mapping[str, Any]) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "name":
        try:
            return _coerce(context[node[1]])
        except KeyError:
            raise RuleEvaluationError(f"unknown name {node[1]!r}") from None
    if kind == "list":
        return [_eval(item, context) for item in node[1]]
    if kind == "not":
        return not _eval(node[1], context)
    if kind == "and":
        return bool(_eval(node[1], context)) and bool(_eval(node[2], context))
    if kind == "or":
        return bool(_eval(node[1], context)) or bool(_eval(node[2], context))
    if kind == "cmp":
        return _compare(node[1], _eval(node[2], context), _eval(node[3], context))
    raise RuleEvaluationError(f"unknown node {kind!r}")


def _names(node: Node, found: set[str]) -> None:
    kind = node[0]
    if kind == "name":
        found.add(node[1])
    elif kind == "list":
        for item in node[1]:
            _names(item, found)
    elif kind == "not":
        _names(node[1], found)
    elif kind in ("and", "or"):
        _names(node[1], found)
        _names(node[2], found)
    elif kind == "cmp":
        _names(node[2], found)
        _names(node[3], found)


@dataclass(frozen=True)
class Rule:
    """A parsed rule; evaluate it as often as needed."""

    source: str
    tree: Node

    def evaluate(self, context: Mapping[str, Any]) -> bool:
        return bool(_eval(self.tree, context))

    def names(self) -> set[str]:
        """The context names the rule refers to."""
        found: set[str] = set()
        _names(self.tree, found)
        return found


def compile_rule(source: str) -> Rule:
    if not source.strip():
        raise RuleSyntaxError("empty rule", 0)
    return Rule(source, _Parser(tokenize(source)).parse())


def evaluate(source: str, context: Mapping[str, Any]) -> bool:
    """Parse and evaluate ``source`` in one go."""
    return compile_rule(source).evaluate(context)
