"""PayPal webhook event mapping, over the exact events the emulator publishes."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paywire.domain.errors import ValidationError
from paywire.domain.events import ProviderEvent
from paywire.domain.facts import Fact
from paywire.domain.money import Money
from paywire.domain.order import OrderStatus
from paywire.emulator import AppCredentials, EmulatorConfig
from paywire.emulator.paypal.events import EVENT_TYPES, build_event, sample_resource
from paywire.providers.paypal.client import PayPalClient
from paywire.providers.paypal.events import EVENTS, OTHER, PayPalEventParser, meaning
from paywire.providers.paypal.mapping import up_capture_id
from paywire.testing import EmulatorServer, run_emulator
from testkit import CLIENT_ID, CLIENT_SECRET, approve, auth_headers, order_body, usd

S = OrderStatus
USD10 = Money(1000, "USD")
PARSER = PayPalEventParser()


@dataclass
class World:
    """Events published by one emulator run through every flow, by label, and the ids met."""

    url: str
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    published: list[dict[str, Any]] = field(default_factory=list)


def latest(server: EmulatorServer, event_type: str) -> dict[str, Any]:
    """A copy of the newest event of `event_type` the emulator published."""
    return copy.deepcopy([e for e in server.emu.events.values()
                          if e["event_type"] == event_type][-1])


def new_order(pp: httpx.Client, ours: str, intent: str = "CAPTURE",
              scenario: str | None = "approve") -> str:
    """An order made as paywire makes one (custom_id = invoice_id = our id), then approved."""
    body = order_body(custom_id=ours, invoice_id=ours)
    body["intent"] = intent
    order_id: str = pp.post("/v2/checkout/orders", json=body).json()["id"]
    if scenario:
        approve(pp, order_id, scenario)
    return order_id


def pay(pp: httpx.Client, order_id: str, action: str = "capture") -> str:
    """Capture or authorize an approved order: its first capture or authorization id."""
    kind = "captures" if action == "capture" else "authorizations"
    r = pp.post(f"/v2/checkout/orders/{order_id}/{action}").json()
    found: str = r["purchase_units"][0]["payments"][kind][0]["id"]
    return found


def drive(server: EmulatorServer, pp: httpx.Client, w: World) -> None:
    """Every flow that makes the emulator publish an event paywire maps."""
    w.ids["paid"] = oid = new_order(pp, "ord_paid")
    w.events["approved"] = latest(server, "CHECKOUT.ORDER.APPROVED")
    w.ids["paid_capture"] = cap = pay(pp, oid)
    w.events["capture_completed"] = latest(server, "PAYMENT.CAPTURE.COMPLETED")
    w.events["order_completed"] = latest(server, "CHECKOUT.ORDER.COMPLETED")
    w.ids["refund"] = pp.post(f"/v2/payments/captures/{cap}/refund",
                              json={"amount": usd("4.00"), "invoice_id": "ref_1"}).json()["id"]
    w.events["refunded"] = latest(server, "PAYMENT.CAPTURE.REFUNDED")
    assert pp.post(f"/_emulator/captures/{cap}/reverse").status_code == 200
    w.events["reversed"] = latest(server, "PAYMENT.CAPTURE.REVERSED")
    for scenario in ("pending", "decline"):
        w.ids[scenario] = oid = new_order(pp, f"ord_{scenario}", scenario=scenario)
        w.ids[f"{scenario}_capture"] = cap = pay(pp, oid)
    w.events["capture_declined"] = latest(server, "PAYMENT.CAPTURE.DECLINED")
    w.events["capture_pending"] = latest(server, "PAYMENT.CAPTURE.PENDING")
    assert pp.post(f"/_emulator/captures/{w.ids['pending_capture']}/deny").status_code == 200
    w.events["capture_denied"] = latest(server, "PAYMENT.CAPTURE.DENIED")
    for ours in ("ord_auth", "ord_auth_captured"):
        w.ids[ours] = oid = new_order(pp, ours, "AUTHORIZE")
        w.ids[f"{ours}_id"] = auth = pay(pp, oid, "authorize")
    w.events["auth_created"] = latest(server, "PAYMENT.AUTHORIZATION.CREATED")
    assert pp.post(f"/v2/payments/authorizations/{auth}/capture").status_code == 201
    w.events["auth_capture"] = latest(server, "PAYMENT.CAPTURE.COMPLETED")
    assert pp.post(f"/v2/payments/authorizations/{w.ids['ord_auth_id']}/void").status_code == 204
    w.events["auth_voided"] = latest(server, "PAYMENT.AUTHORIZATION.VOIDED")
    w.ids["expired"] = oid = new_order(pp, "ord_expired", scenario=None)
    assert pp.post(f"/_emulator/orders/{oid}/expire").status_code == 200
    w.events["order_voided"] = latest(server, "CHECKOUT.ORDER.VOIDED")
    w.ids["unapproved"] = oid = new_order(pp, "ord_unapproved")
    assert pp.post(f"/_emulator/orders/{oid}/reverse-approval").status_code == 200
    w.events["approval_reversed"] = latest(server, "CHECKOUT.PAYMENT-APPROVAL.REVERSED")
    w.ids["disputed"] = oid = new_order(pp, "ord_disputed")
    w.ids["disputed_capture"] = cap = pay(pp, oid)
    w.ids["dispute"] = dispute = pp.post("/_emulator/disputes",
                                         json={"capture_id": cap}).json()["dispute_id"]
    w.events["dispute_created"] = created = latest(server, "CUSTOMER.DISPUTE.CREATED")
    assert pp.post(f"/_emulator/disputes/{dispute}/resolve",
                   json={"outcome": "RESOLVED_BUYER_FAVOUR"}).status_code == 200
    w.events["dispute_resolved"] = latest(server, "CUSTOMER.DISPUTE.RESOLVED")
    w.published = copy.deepcopy(list(server.emu.events.values()))
    # The emulator never sends UPDATED on its own; its builder wraps the real dispute in one.
    w.events["dispute_updated"] = build_event(server.emu, "CUSTOMER.DISPUTE.UPDATED", "dispute",
                                              created["resource"], server.url)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """One emulator run through every flow, shared by this module's tests."""
    config = EmulatorConfig(apps=[AppCredentials(CLIENT_ID, CLIENT_SECRET)], seed=1234,
                            webhook_time_scale=0.001)
    with run_emulator(config) as server, httpx.Client(
            base_url=server.url, headers=auth_headers(server.url), timeout=10) as pp:
        w = World(server.url)
        drive(server, pp, w)
        yield w


def parse(event: dict[str, Any]) -> ProviderEvent:
    """Parse an event exactly as it would arrive: JSON bytes."""
    return PARSER.parse(json.dumps(event).encode())


DELETE = object()


def mutated(event: dict[str, Any], path: tuple[Any, ...], value: Any = DELETE) -> dict[str, Any]:
    """A copy of `event` with the value at `path` replaced, or deleted."""
    ev = copy.deepcopy(event)
    parent = ev
    for key in path[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return ev


def expected(event: dict[str, Any], kind: str, resource_id: str | None, fact: Fact | None,
             **locators: str | None) -> ProviderEvent:
    """The ProviderEvent `event` should become."""
    return ProviderEvent("paypal", event["id"], event["event_type"], kind, resource_id, fact,
                         **locators)


def test_table_is_exhaustive_over_the_emulators_event_types() -> None:
    """Every type the emulator (PayPal) sends has a row; anything else is the explicit OTHER."""
    assert set(EVENTS) == set(EVENT_TYPES)
    assert meaning("PAYMENT.SALE.COMPLETED") is OTHER and OTHER.target is None


@pytest.mark.parametrize(("label", "order", "target"), [
    ("approved", "paid", S.APPROVED),
    # PayPal sends CHECKOUT.ORDER.VOIDED for expiry too, and the event cannot tell them apart.
    ("order_voided", "expired", S.VOIDED),
    ("approval_reversed", "unapproved", None),  # no fact: the truth fetch settles it
])
def test_order_events(world: World, label: str, order: str, target: OrderStatus | None) -> None:
    """CHECKOUT.ORDER.* → the order's fact; our id from custom_id, PayPal's from the resource."""
    ev, oid = world.events[label], world.ids[order]
    fact = Fact(target, "webhook") if target else None
    assert parse(ev) == expected(ev, "order", oid, fact, order_id=f"ord_{order}",
                                 provider_order_id=oid)


def test_order_completed(world: World) -> None:
    """CHECKOUT.ORDER.COMPLETED → COMPLETED with the first capture's id and exact amount."""
    ev = world.events["order_completed"]
    cap = world.ids["paid_capture"]
    fact = Fact(S.COMPLETED, "webhook", capture_id=cap, amount=USD10,
                detail={"provider_status": "COMPLETED"})
    assert parse(ev) == expected(ev, "order", world.ids["paid"], fact, order_id="ord_paid",
                                 provider_order_id=world.ids["paid"])


def test_order_completed_means_what_its_capture_means(world: World) -> None:
    """A COMPLETED order whose capture was DECLINED (PayPal's own sample) is DENIED."""
    ev = copy.deepcopy(world.events["order_completed"])
    cap = ev["resource"]["purchase_units"][0]["payments"]["captures"][0]
    cap.update(status="DECLINED", status_details={"reason": "DECLINED_BY_RISK_FRAUD_FILTERS"})
    fact = parse(ev).fact
    assert fact is not None
    assert (fact.target, fact.reason) == (S.DENIED, "DECLINED_BY_RISK_FRAUD_FILTERS")


def test_order_completed_without_payments(world: World) -> None:
    """No payments shown: COMPLETED without amount; for an AUTHORIZE order, ask PayPal."""
    ev = mutated(world.events["order_completed"], ("resource", "purchase_units", 0, "payments"))
    assert parse(ev).fact == Fact(S.COMPLETED, "webhook")
    ev["resource"]["intent"] = "AUTHORIZE"
    assert parse(ev).fact is None


def test_approval_reversed_in_paypals_sample_shape(world: World) -> None:
    """PayPal's sample CHECKOUT.PAYMENT-APPROVAL.REVERSED names the order `order_id`."""
    ev = copy.deepcopy(world.events["approval_reversed"])
    ev["resource"]["order_id"] = ev["resource"].pop("id")
    assert parse(ev) == parse(world.events["approval_reversed"])


@pytest.mark.parametrize(("label", "order", "target", "reason"), [
    ("capture_completed", "paid", S.COMPLETED, None),
    ("capture_pending", "pending", S.PENDING, "PENDING_REVIEW"),
    ("capture_denied", "pending", S.DENIED, None),
    ("capture_declined", "decline", S.DENIED, None),
])
def test_capture_events(world: World, label: str, order: str, target: OrderStatus,
                        reason: str | None) -> None:
    """PAYMENT.CAPTURE.* → the capture's fact, order found by custom_id and related order id."""
    ev = world.events[label]
    cap = world.ids[f"{order}_capture"]
    fact = Fact(target, "webhook", capture_id=cap, amount=USD10, reason=reason,
                detail={"provider_status": ev["resource"]["status"]})
    assert parse(ev) == expected(ev, "capture", cap, fact, order_id=f"ord_{order}",
                                 provider_order_id=world.ids[order], capture_id=cap)


def test_capture_of_an_authorization_names_it(world: World) -> None:
    """A capture of an authorization carries the authorization id (related_ids)."""
    fact = parse(world.events["auth_capture"]).fact
    assert fact is not None and fact.target == S.COMPLETED
    assert fact.authorization_id == world.ids["ord_auth_captured_id"]


@pytest.mark.parametrize(("label", "kind", "rid"), [
    ("capture_completed", "capture", "paid_capture"),  # a COMPLETED event, a PENDING capture
    ("refunded", "refund", "refund"),  # a PENDING refund has not given money back yet
])
def test_pending_resource_asks_paypal(world: World, label: str, kind: str, rid: str) -> None:
    """A resource whose status contradicts its event type states nothing: fetch it."""
    parsed = parse(mutated(world.events[label], ("resource", "status"), "PENDING"))
    assert (parsed.fact, parsed.resource_kind, parsed.resource_id) == (None, kind, world.ids[rid])


def test_refunded(world: World) -> None:
    """PAYMENT.CAPTURE.REFUNDED → REFUNDED: refund id, amount, capture from the `up` link."""
    ev = world.events["refunded"]
    refund, cap = world.ids["refund"], world.ids["paid_capture"]
    fact = Fact(S.REFUNDED, "webhook", capture_id=cap, refund_id=refund,
                amount=Money(400, "USD"),
                detail={"provider_status": "COMPLETED", "invoice_id": "ref_1"})
    assert parse(ev) == expected(ev, "refund", refund, fact, order_id="ord_paid",
                                 capture_id=cap)


def test_reversed(world: World) -> None:
    """PAYMENT.CAPTURE.REVERSED (refund-shaped) → REVERSED on the capture its `up` link names."""
    ev = world.events["reversed"]
    cap = world.ids["paid_capture"]
    fact = Fact(S.REVERSED, "webhook", capture_id=cap, amount=Money(600, "USD"),
                detail={"reversal_id": ev["resource"]["id"]})
    assert parse(ev) == expected(ev, "capture", cap, fact, order_id="ord_paid", capture_id=cap)
    no_up = [x for x in ev["resource"]["links"] if x["rel"] != "up"]
    parsed = parse(mutated(ev, ("resource", "links"), no_up))
    assert (parsed.resource_kind, parsed.resource_id, parsed.capture_id) == (
        "refund", ev["resource"]["id"], None)


@pytest.mark.parametrize(("label", "ours", "target"), [
    ("auth_created", "ord_auth_captured", S.AUTHORIZED), ("auth_voided", "ord_auth", S.VOIDED)])
def test_authorization_events(world: World, label: str, ours: str, target: OrderStatus) -> None:
    """PAYMENT.AUTHORIZATION.CREATED / VOIDED → AUTHORIZED / VOIDED with the authorization."""
    ev = world.events[label]
    auth = world.ids[f"{ours}_id"]
    fact = Fact(target, "webhook", authorization_id=auth, amount=USD10,
                detail={"provider_status": ev["resource"]["status"]})
    assert parse(ev) == expected(ev, "authorization", auth, fact, order_id=ours,
                                 provider_order_id=world.ids[ours])


@pytest.mark.parametrize("label", ["dispute_created", "dispute_updated", "dispute_resolved"])
def test_dispute_events(world: World, label: str) -> None:
    """CUSTOMER.DISPUTE.* → no fact; the dispute, and the capture it disputes."""
    ev = world.events[label]
    dispute, cap = world.ids["dispute"], world.ids["disputed_capture"]
    assert parse(ev) == dataclasses.replace(
        expected(ev, "dispute", dispute, None, order_id="ord_disputed", capture_id=cap,
                 dispute_id=dispute), dispute_open=label != "dispute_resolved")


def test_every_published_event_parses(world: World) -> None:
    """Each event the emulator published in these flows parses, unknown to none."""
    kinds = {parse(ev).resource_kind for ev in world.published}
    assert kinds == {"order", "capture", "refund", "authorization", "dispute"}


@pytest.mark.parametrize(("body", "event_id", "event_type"), [
    (b'{"id": "WH-1", "event_type": "PAYMENT.CAPTURE.COMPLETED"}', "WH-1",
     "PAYMENT.CAPTURE.COMPLETED"),
    (b'{"id": 7, "event_type": ["x"]}', None, None), (b"[1]", None, None),
    (b"not json", None, None), (b'{"id": "' + b"x" * 300 + b'"}', "x" * 128, None)])
def test_marks_read_paypal_headers_and_body_for_the_rejection_log(
        body: bytes, event_id: str | None, event_type: str | None) -> None:
    """A refused delivery is recorded under PayPal's transmission id and certificate URL (any
    header case) and the event id and type its JSON names, cut to 128 characters; never raises."""
    headers = {"Paypal-Transmission-Id": "tx-1", "PAYPAL-CERT-URL": "https://c.example/x"}
    marks = PayPalEventParser().marks(headers, body)
    assert (marks.transmission_id, marks.cert_url) == ("tx-1", "https://c.example/x")
    assert (marks.event_id, marks.event_type) == (event_id, event_type)
    assert PayPalEventParser().marks({}, body).transmission_id is None


def test_unknown_type_is_stored_not_acted_on(world: World) -> None:
    """A type paywire does not map → no fact, kind "other", the resource id kept."""
    ev = mutated(world.events["capture_completed"], ("event_type",), "PAYMENT.SALE.COMPLETED")
    assert parse(ev) == expected(ev, "other", world.ids["paid_capture"], None)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_simulated_events_parse(world: World, event_type: str) -> None:
    """The simulator's mock events (random ids, no custom_id) parse without error."""
    kind, res = sample_resource(event_type, "2025-01-01T00:00:00Z", world.url)
    ev = {"id": "WH-SIM", "event_type": event_type, "resource_type": kind, "resource": res}
    parsed = parse(ev)
    assert parsed.order_id is None
    assert (parsed.fact is None) == (EVENTS[event_type].target is None)


ENVELOPE = '{"id": "WH-1", "event_type": "X", "resource": %s}'


@pytest.mark.parametrize("body", [
    "", "[]", "null", '"WH-1"', "{", "[" * 100_000, '{"event_type": "X", "resource": {}}',
    '{"id": "WH-1", "resource": {}}', '{"id": "WH-1", "event_type": "X"}', ENVELOPE % "[]",
    ENVELOPE.replace('"WH-1"', "7") % "{}", ENVELOPE.replace("WH-1", "WH 1") % "{}",
    ENVELOPE % '{"v": NaN}', ENVELOPE % '{"v": -Infinity}', ENVELOPE % ("9" * 5000),
])
def test_not_an_event(body: str) -> None:
    """Bodies that are not PayPal events → ValidationError(field="body")."""
    with pytest.raises(ValidationError) as err:
        PARSER.parse(body.encode())
    assert err.value.field == "body"
    with pytest.raises(ValidationError):
        PARSER.parse(b'{"id": "\xff"}')  # not UTF-8 either


@pytest.mark.parametrize(("label", "path", "value"), [
    ("capture_completed", ("id",), DELETE),
    ("capture_completed", ("amount", "value"), "10.001"),
    ("capture_completed", ("amount", "value"), 10.0),
    ("capture_completed", ("status",), "SETTLED"),
    ("capture_completed", ("id",), "../../v1/oauth2"),
    ("refunded", ("amount", "value"), "0.00"),
    ("auth_created", ("expiration_time",), "soon"),
    ("order_completed", ("purchase_units", 0, "payments", "captures", 0, "amount"), DELETE),
    ("dispute_created", ("dispute_id",), DELETE),
    ("approved", ("id",), ""),
])
def test_unusable_resource_of_a_known_type(world: World, label: str, path: tuple[Any, ...],
                                           value: Any) -> None:
    """A known type whose resource is unusable → ValidationError(field="resource") naming it."""
    ev = mutated(world.events[label], ("resource", *path), value)
    with pytest.raises(ValidationError) as err:
        parse(ev)
    assert err.value.field == "resource"
    assert err.value.details == {"event_id": ev["id"], "event_type": ev["event_type"]}


async def test_refund_up_link_names_the_capture(world: World) -> None:
    """PayPalClient.get_refund fills capture_id from the `up` link; other links name none."""
    async with PayPalClient(world.url, CLIENT_ID, CLIENT_SECRET) as client:
        result = await client.get_refund(world.ids["refund"])
    assert (result.capture_id, result.amount) == (world.ids["paid_capture"], Money(400, "USD"))
    up = "https://api-m.paypal.com/v2/payments/captures/{}"
    assert up_capture_id({"links": [{"rel": "up", "href": up.format("8MC5")}]}) == "8MC5"
    for href in (up.format("8MC5/refund"), up.format(".."), "https://x/v2/checkout/orders/1", 7):
        assert up_capture_id({"links": [{"rel": "up", "href": href}]}) is None
    assert up_capture_id({"links": "up"}) is None


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids,
                                                               max_size=3), max_leaves=12)


def only_validation_errors(body: bytes) -> None:
    """Parse `body`: it succeeds or raises ValidationError, nothing else."""
    with contextlib.suppress(ValidationError):
        PARSER.parse(body)


@given(st.binary(max_size=300) | JSON.map(lambda v: json.dumps(v).encode()))
def test_random_bodies_raise_only_validation_errors(body: bytes) -> None:
    """Random bytes and random JSON never raise anything but ValidationError."""
    only_validation_errors(body)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value."""
    found = [prefix]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(
        value, list) else ()
    for key, child in items:
        found.extend(paths(child, (*prefix, key)))
    return found


@given(data=st.data())
def test_mutated_real_events_raise_only_validation_errors(world: World, data: st.DataObject
                                                          ) -> None:
    """Real events with any part replaced or removed never raise but ValidationError."""
    ev = world.events[data.draw(st.sampled_from(sorted(world.events)))]
    path = data.draw(st.sampled_from(paths(ev)[1:]))
    value = data.draw(st.just(DELETE) | JSON) if isinstance(path[-1], str) else data.draw(JSON)
    only_validation_errors(json.dumps(mutated(ev, path, value)).encode())
