"""The APS emulator's in-memory world: transactions, tokens, page sessions, logs.

Handlers mutate state under `ApsState.lock` and never await while holding it, so a request on
the event loop and a test (or CLI) reading from another thread always see whole transactions.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from random import Random
from typing import TYPE_CHECKING, Any

from paywire.emulator.aps.config import ApsEmulatorConfig
from paywire.emulator.clock import EmulatorClock
from paywire.emulator.faults import FaultInjector

if TYPE_CHECKING:
    from paywire.emulator.aps.feedback import FeedbackDeliverer

# The messages the emulator answers with (a subset of APS's published table).
MESSAGES: dict[str, str] = {
    "000": "Success", "001": "Missing parameter", "002": "Invalid parameter format",
    "004": "Invalid command", "005": "Invalid amount", "008": "Signature mismatch",
    "009": "Invalid merchant identifier", "010": "Invalid access code", "012": "Card expired",
    "013": "Invalid currency", "016": "Invalid card number", "027": "Invalid extra parameters",
    "029": "Insufficient funds",
    "030": "Authentication failed", "034": "Operation not allowed", "036": "Order not found",
    "037": "Missing return URL", "042": "Operation amount exceeds the authorized amount",
    "044": "Token name does not exist", "048": "Operation amount exceeds captured amount",
    "064": "3-D Secure check requested", "066": "Merchant reference already exists",
    "072": "Transaction has been cancelled by the consumer", "100": "Invalid expiry date",
    "662": "Operation not allowed. The specified order is not confirmed yet.",
    "666": "Transaction declined",
    "777": "The transaction has been processed, but failed to receive confirmation.",
}
STATUS_MESSAGES: dict[str, str] = {"19": "Transaction pending"}


def message_for(code: str) -> str:
    """The `response_message` of a five-digit code."""
    if code[2:] == "000" and code[:2] in STATUS_MESSAGES:
        return STATUS_MESSAGES[code[:2]]
    return MESSAGES.get(code[2:], "Failed")


@dataclass
class Token:
    """A tokenized test card (the emulator alone holds the full number)."""

    name: str
    card_number: str = field(repr=False)
    expiry_date: str
    holder: str
    brand: str
    created_at: float


@dataclass
class Operation:
    """A maintenance operation (or an offline change) on a transaction."""

    command: str
    amount: int
    response_code: str
    at: float
    maintenance_reference: str | None = None


@dataclass
class Transaction:
    """A PURCHASE or AUTHORIZATION and everything done to it since."""

    fort_id: str
    merchant_reference: str
    command: str
    amount: int
    currency: str
    channel: str  # api | page
    echo: dict[str, str]  # the request's fields, echoed in every answer about it
    status: str  # the truth's two-digit status
    response_code: str  # the truth's code (what CHECK_STATUS reports)
    created_at: float
    updated_at: float
    token_name: str | None = None
    card_masked: str | None = None
    card_brand: str | None = None
    expiry_date: str | None = None
    return_url: str | None = None
    answered_code: str | None = None  # what the first answer said (15777 while truth is 14000)
    authorization_code: str | None = None
    challenge_key: str | None = field(default=None, repr=False)
    authorized: int = 0
    captured: int = 0
    refunded: int = 0
    voided: bool = False
    operations: list[Operation] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The transaction for the control API."""
        return {
            "fort_id": self.fort_id, "merchant_reference": self.merchant_reference,
            "command": self.command, "amount": self.amount, "currency": self.currency,
            "channel": self.channel, "status": self.status, "response_code": self.response_code,
            "answered_code": self.answered_code, "token_name": self.token_name,
            "card_number": self.card_masked, "authorized_amount": self.authorized,
            "captured_amount": self.captured, "refunded_amount": self.refunded,
            "voided": self.voided, "awaiting_3ds": self.challenge_key is not None,
            "return_url": self.return_url,
            "operations": [{"command": o.command, "amount": o.amount,
                            "response_code": o.response_code,
                            "maintenance_reference": o.maintenance_reference, "at": o.at}
                           for o in self.operations],
        }


@dataclass
class PageSession:
    """A hosted payment page or tokenization form the buyer has open."""

    id: str
    key: str = field(repr=False)
    kind: str  # payment | tokenization
    params: dict[str, str]  # the merchant's signed request (without the signature)
    created_at: float
    done: bool = False


@dataclass
class RequestEntry:
    """One S2S API request, as received and answered."""

    at: float
    command: str
    merchant_reference: str | None
    response_code: str
    signature_valid: bool
    params: dict[str, str] = field(repr=False)
    # The caller's W3C `traceparent`, as sent (APS ignores it; recorded so a test can follow
    # a trace into the provider's side).
    traceparent: str | None = None


class ApsState:
    """Every resource the APS emulator holds."""

    def __init__(self, config: ApsEmulatorConfig, clock: EmulatorClock | None = None) -> None:
        self.config = config
        self.clock = clock or EmulatorClock()
        self.rng = Random(config.seed)  # noqa: S311 - test fixtures, not crypto
        self.lock = threading.RLock()
        self.faults = FaultInjector(self.rng)
        from paywire.emulator.aps.feedback import FeedbackDeliverer  # it needs this module

        self.deliverer: FeedbackDeliverer = FeedbackDeliverer(self)
        self.reset()

    def reset(self) -> None:
        """Forget every transaction, token, session, rule and log (credentials stay)."""
        with self.lock:
            self.transactions: dict[str, Transaction] = {}  # by merchant_reference
            self.fort_ids: dict[str, str] = {}  # fort_id -> merchant_reference
            self.tokens: dict[str, Token] = {}
            self.sessions: dict[str, PageSession] = {}
            self.requests: list[RequestEntry] = []
            self.faults.clear()
            self.deliverer.reset()

    def new_fort_id(self) -> str:
        """An 18-digit fort id, unique in this emulator."""
        with self.lock:
            while True:
                fort_id = str(self.rng.randrange(10**17, 10**18))
                if fort_id not in self.fort_ids:
                    return fort_id

    def new_token(self, card_number: str, expiry_date: str, holder: str, brand: str) -> Token:
        """Tokenize a card."""
        with self.lock:
            token = Token(name=secrets.token_hex(16), card_number=card_number,
                          expiry_date=expiry_date, holder=holder, brand=brand,
                          created_at=self.clock.now())
            self.tokens[token.name] = token
            return token

    def add(self, tx: Transaction) -> None:
        """Store a new transaction."""
        with self.lock:
            self.transactions[tx.merchant_reference] = tx
            self.fort_ids[tx.fort_id] = tx.merchant_reference

    def find(self, merchant_reference: str | None, fort_id: str | None) -> Transaction | None:
        """The transaction by fort id and/or reference (both must agree when both are given)."""
        with self.lock:
            if fort_id:
                ref = self.fort_ids.get(fort_id)
                if ref is None or (merchant_reference and merchant_reference != ref):
                    return None
                return self.transactions.get(ref)
            return self.transactions.get(merchant_reference or "")
