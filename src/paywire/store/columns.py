"""How an order's money is stored by every backend: integer minor units in the order's currency.

Shared by the SQL rows and the DynamoDB items, so the one rule (a running total in another
currency than the order's is refused, never converted) cannot drift between them.
"""

from __future__ import annotations

from paywire.domain.errors import ValidationError
from paywire.domain.money import Money


def minor_in(money: Money | None, currency: str, name: str) -> int | None:
    """`money`'s minor units (None stays None); ValidationError if not in `currency`."""
    if money is None:
        return None
    if money.currency != currency:
        raise ValidationError(f"{name} is in {money.currency}, the order in {currency}",
                              field=name)
    return money.minor


def money_of(minor: int | None, currency: str) -> Money | None:
    """The Money a stored minor-unit amount stands for (None stays None)."""
    return None if minor is None else Money(minor, currency)
