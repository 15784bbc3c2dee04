"""The emulator's in-memory world: resources, tokens, idempotency records, logs.

All mutation happens synchronously inside one event loop, so a handler that does not await
between reading and writing state is atomic without locks.
"""

from __future__ import annotations

import random
import secrets
import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from paywire.emulator.clock import EmulatorClock
from paywire.emulator.faults import FaultInjector
from paywire.emulator.paypal.config import AppCredentials, PayPalConfig
from paywire.emulator.paypal.subscriptions import Webhook as Webhook

if TYPE_CHECKING:
    from paywire.emulator.paypal.delivery import WebhookDeliverer

_ALNUM = string.ascii_uppercase + string.digits


def new_id(n: int = 17) -> str:
    """A PayPal-looking resource id (uppercase alphanumerics)."""
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def new_debug_id() -> str:
    """A PayPal-looking debug id (13 lowercase hex digits)."""
    return secrets.token_hex(7)[:13]


@dataclass
class Token:
    """An issued OAuth access token."""

    value: str = field(repr=False)
    client_id: str
    expires_at: float


@dataclass
class PurchaseUnit:
    """A purchase unit as the merchant sent it, with its total in minor units."""

    reference_id: str
    currency: str
    amount_minor: int
    raw: dict[str, Any]  # the unit as received (validated), echoed in representations
    custom_id: str | None = None
    invoice_id: str | None = None
    capture_ids: list[str] = field(default_factory=list)
    authorization_ids: list[str] = field(default_factory=list)


@dataclass
class Order:
    """A Checkout order and its lifecycle."""

    id: str
    client_id: str
    intent: str  # CAPTURE | AUTHORIZE
    status: str  # CREATED | APPROVED | COMPLETED | VOIDED | PAYER_ACTION_REQUIRED
    units: list[PurchaseUnit]
    create_time: float
    update_time: float
    return_url: str | None = None
    cancel_url: str | None = None
    payment_source_requested: bool = False
    payer: dict[str, Any] | None = None
    approve_time: float | None = None
    # Chosen by the test buyer at approval: "approve", "decline", "pending".
    scenario: str = "approve"
    expired: bool = False
    approval_reversed: bool = False
    # Origin of the request that created the order: links in later webhook events use it.
    base_url: str = ""


@dataclass
class Capture:
    """A capture (from an order, or from an authorization)."""

    id: str
    client_id: str
    order_id: str
    currency: str
    amount_minor: int
    status: str  # COMPLETED | DECLINED | PARTIALLY_REFUNDED | PENDING | REFUNDED | FAILED
    create_time: float
    update_time: float
    final_capture: bool = True
    status_reason: str | None = None
    invoice_id: str | None = None
    custom_id: str | None = None
    authorization_id: str | None = None
    refunded_minor: int = 0
    refund_ids: list[str] = field(default_factory=list)
    reversed: bool = False
    dispute_ids: list[str] = field(default_factory=list)


@dataclass
class Authorization:
    """An authorization on an AUTHORIZE-intent order."""

    id: str
    client_id: str
    order_id: str
    currency: str
    amount_minor: int
    status: str  # CREATED | CAPTURED | PARTIALLY_CAPTURED | VOIDED | DENIED | PENDING
    create_time: float
    update_time: float
    expiration_time: float
    honor_until: float
    invoice_id: str | None = None
    custom_id: str | None = None
    captured_minor: int = 0
    capture_ids: list[str] = field(default_factory=list)
    parent_id: str | None = None  # set on a reauthorization


@dataclass
class Refund:
    """A refund of (part of) a capture."""

    id: str
    client_id: str
    capture_id: str
    currency: str
    amount_minor: int
    status: str  # CANCELLED | FAILED | PENDING | COMPLETED
    create_time: float
    update_time: float
    invoice_id: str | None = None
    custom_id: str | None = None
    note_to_payer: str | None = None


@dataclass
class Dispute:
    """A dispute opened on a capture through the control API."""

    id: str
    client_id: str
    capture_id: str
    currency: str
    amount_minor: int
    reason: str
    status: str  # OPEN | WAITING_FOR_SELLER_RESPONSE | UNDER_REVIEW | RESOLVED | ...
    create_time: float
    update_time: float
    outcome: str | None = None  # RESOLVED_BUYER_FAVOUR | RESOLVED_SELLER_FAVOUR | ...


@dataclass
class IdempotencyRecord:
    """The first successful answer to a PayPal-Request-Id, replayed until `expires_at`."""

    status: int
    body: bytes
    headers: dict[str, str]
    expires_at: float


@dataclass
class RequestLogEntry:
    """One request the emulator received."""

    at: float
    method: str
    path: str
    query: str
    status: int
    debug_id: str
    request_id: str | None
    client_id: str | None
    response_body: bytes | None = field(default=None, repr=False)
    content_type: str = ""
    # The caller's W3C `traceparent`, as sent: PayPal ignores it; recorded so a test can follow
    # a trace into the provider's side.
    traceparent: str | None = None


class EmulatorState:
    """Every resource the emulator holds, keyed by id."""

    def __init__(self, config: PayPalConfig, clock: EmulatorClock) -> None:
        self.config = config
        self.clock = clock
        self.rng = random.Random(config.seed)  # noqa: S311 - test fixtures, not crypto
        self.apps: dict[str, AppCredentials] = {a.client_id: a for a in config.apps}
        from paywire.emulator.paypal.delivery import WebhookDeliverer  # it needs this module

        self.deliverer: WebhookDeliverer = WebhookDeliverer(self)
        self.faults = FaultInjector(self.rng)
        self.reset()

    def reset(self) -> None:
        """Forget every resource, token and log entry (apps and config stay)."""
        self.tokens: dict[str, Token] = {}
        self.orders: dict[str, Order] = {}
        self.captures: dict[str, Capture] = {}
        self.authorizations: dict[str, Authorization] = {}
        self.refunds: dict[str, Refund] = {}
        self.disputes: dict[str, Dispute] = {}
        self.webhooks: dict[str, Webhook] = {}
        self.events: dict[str, dict[str, Any]] = {}  # event id -> event, insertion-ordered
        self.event_owner: dict[str, str] = {}  # event id -> client id
        self.idempotency: dict[tuple[str, str, str], IdempotencyRecord] = {}
        self.paid_invoices: dict[tuple[str, str], str] = {}  # (client, invoice) -> capture id
        self.request_log: list[RequestLogEntry] = []
        self.faults.clear()
        self.deliverer.reset()

    def issue_token(self, client_id: str) -> Token:
        """A new bearer token for `client_id`, valid for the configured lifetime."""
        tok = Token(
            value="A21AA" + secrets.token_urlsafe(48),
            client_id=client_id,
            expires_at=self.clock.now() + self.config.token_ttl_seconds,
        )
        self.tokens[tok.value] = tok
        return tok
