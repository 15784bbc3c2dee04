"""Condition expressions for DynamoDB requests, built as small composable functions.

A condition is a function of an `Expr` (the request's placeholders) returning the expression
text, so one condition can be rendered into any request without placeholder clashes.

A removed item is a tombstone (`dynamo.items.tombstone`) until DynamoDB's TTL deletes it, so
`absent` and `exists` test for a live item, not for any item: a put-if-absent over a tombstone
succeeds and a write that demands the item fails, exactly as after a delete. The tombstone has
none of a record's other attributes, so every comparison with them is false on it as well.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from paywire.store.dynamo.items import TOMBSTONE, ts


class Expr:
    """Placeholders for one request's expressions (names `#n0`, values `:v0`)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attribute: str) -> str:
        """The placeholder of an attribute name (one per attribute)."""
        for placeholder, named in self.names.items():
            if named == attribute:
                return placeholder
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        """A fresh placeholder for a value."""
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder


Cond = Callable[[Expr], str]


def absent(e: Expr) -> str:
    """The item does not exist, or was removed (a tombstone stands in its place)."""
    return f"attribute_not_exists({e.name('pk')}) OR {e.name('kind')} = {e.value(TOMBSTONE)}"


def exists(e: Expr) -> str:
    """The item exists and is not a removal's tombstone."""
    return f"attribute_exists({e.name('pk')}) AND {e.name('kind')} <> {e.value(TOMBSTONE)}"


def missing(attribute: str) -> Cond:
    """The attribute is not set."""
    return lambda e: f"attribute_not_exists({e.name(attribute)})"


def compare(attribute: str, op: str, value: Any) -> Cond:
    """`attribute <op> value` (=, <>, <, <=, >, >=)."""
    return lambda e: f"{e.name(attribute)} {op} {e.value(value)}"


def one_of(attribute: str, values: tuple[Any, ...]) -> Cond:
    """The attribute equals one of `values`."""
    return lambda e: f"{e.name(attribute)} IN ({', '.join(e.value(v) for v in values)})"


def all_of(*conds: Cond) -> Cond:
    """Every condition holds."""
    return lambda e: " AND ".join(f"({c(e)})" for c in conds)


def any_of(*conds: Cond) -> Cond:
    """At least one condition holds."""
    return lambda e: " OR ".join(f"({c(e)})" for c in conds)


def absent_or_expired(now: datetime) -> Cond:
    """The item does not exist (or was removed), or has expired by `now` (DynamoDB's TTL
    deletes late)."""
    return any_of(absent, compare("expires_at", "<=", ts(now)))


def lease_free(now: datetime) -> Cond:
    """No lease, or one that lapsed before `now`."""
    return any_of(missing("lease_until"), compare("lease_until", "<", ts(now)))
