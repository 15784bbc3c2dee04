"""The emulator's test cards and what each does, like APS's sandbox test cards.

Only these numbers tokenize; any other is refused as an invalid card number. The expiry date
(YYMM) must not be in the past, the security code is 3 digits (4 for AMEX-style numbers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

SUCCESS, CHALLENGE, DECLINE = "success", "challenge", "decline"
INSUFFICIENT, UNCERTAIN, PENDING = "insufficient_funds", "uncertain", "pending"


@dataclass(frozen=True)
class SandboxCard:
    """One test card number and its behaviour on PURCHASE / AUTHORIZATION."""

    number: str
    brand: str
    behaviour: str
    label: str


CARDS: tuple[SandboxCard, ...] = (
    SandboxCard("4005550000000001", "VISA", SUCCESS, "Succeeds without 3-D Secure"),
    SandboxCard("5123450000000008", "MASTERCARD", SUCCESS, "Succeeds without 3-D Secure"),
    SandboxCard("4557012345678902", "VISA", CHALLENGE,
             "3-D Secure challenge (20064): approve or fail on the challenge page"),
    SandboxCard("4000000000000002", "VISA", DECLINE, "Declined by the issuer (666)"),
    SandboxCard("4000000000009995", "VISA", INSUFFICIENT, "Insufficient funds (029)"),
    SandboxCard("4000000000000150", "VISA", UNCERTAIN,
             "Uncertain (15777): succeeded, which only CHECK_STATUS tells"),
    SandboxCard("4000000000000192", "VISA", PENDING,
             "Pending (19): resolved later by a notification (control API)"),
)
BY_NUMBER = {c.number: c for c in CARDS}
_EXPIRY = re.compile(r"([0-9]{2})(0[1-9]|1[0-2])")


def card_problem(number: str, expiry: str, cvv: str | None, now: datetime) -> str | None:
    """The APS message code refusing this card (016 number, 100 expiry, 012 expired, 002
    security code), or None if it tokenizes."""
    if number not in BY_NUMBER:
        return "016"
    m = _EXPIRY.fullmatch(expiry)
    if m is None:
        return "100"
    year, month = 2000 + int(m.group(1)), int(m.group(2))
    if (year, month) < (now.year, now.month):
        return "012"
    if cvv is not None and not re.fullmatch(r"[0-9]{3,4}", cvv):
        return "002"
    return None


def masked(number: str) -> str:
    """`400555******0001`: the first six and last four digits."""
    return number[:6] + "*" * (len(number) - 10) + number[-4:]
