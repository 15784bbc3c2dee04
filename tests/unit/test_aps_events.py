"""APS feedback → verified delivery → `ProviderEvent` (pure: no network, no store)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest

from paywire.domain.errors import SignatureError
from paywire.domain.money import Money
from paywire.domain.order import OrderStatus
from paywire.providers.aps.answers import refund_id_of
from paywire.providers.aps.events import ApsEventParser, ApsWebhookVerifier, event_of
from paywire.providers.aps.forms import FeedbackVerifier, Merchant
from paywire.providers.aps.results import parse_result
from paywire.providers.aps.signature import Signer

S = OrderStatus
SIGNER = Signer("SHA-256", "req-phrase-123", "resp-phrase-456")
MERCHANT = Merchant(access_code="ACCESS", merchant_identifier="MERCH", signer=SIGNER)
JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


class Clock:
    def now(self) -> datetime:
        return datetime(2026, 11, 28, tzinfo=UTC)


VERIFIER = ApsWebhookVerifier(FeedbackVerifier(MERCHANT), Clock())


def signed(**params: str) -> dict[str, str]:
    base = {"access_code": "ACCESS", "merchant_identifier": "MERCH", "language": "en",
            "command": "PURCHASE", "merchant_reference": "ord_abc-1", "amount": "1250",
            "currency": "KWD", "fort_id": "169996200000001", "response_code": "14000",
            "response_message": "Success", "status": "14", "customer_email": "b@example.com"}
    base.update(params)
    base = {k: v for k, v in base.items() if v != "DROP"}
    return dict(base, signature=SIGNER.response_signature(base))


def as_json(params: dict[str, Any]) -> bytes:
    return json.dumps(params).encode()


async def test_purchase_success_is_a_completed_capture() -> None:
    body = as_json(signed())
    delivery = await VERIFIER.verify(JSON, body)
    event = ApsEventParser().parse(body)
    assert delivery.transmission_id.startswith(event.event_id)
    assert (event.order_id, event.resource_kind, event.resource_id) == (
        "ord_abc", "order", "ord_abc")
    assert event.fact is not None and event.fact.target is S.COMPLETED
    assert event.fact.capture_id == "169996200000001"
    assert event.fact.amount == Money(1250, "KWD")


async def test_form_and_json_of_the_same_params_are_one_event() -> None:
    params = signed()
    reordered = dict(reversed(list(params.items())))
    form = urlencode(reordered).encode()
    await VERIFIER.verify(FORM, form)
    assert ApsEventParser().parse(form).event_id == ApsEventParser().parse(
        as_json(params)).event_id


@pytest.mark.parametrize(("params", "target", "attempt"), [
    ({"command": "AUTHORIZATION", "response_code": "02000", "status": "02"}, S.AUTHORIZED, None),
    ({"command": "PURCHASE", "response_code": "13666", "status": "13"}, S.DENIED, 1),
    ({"command": "PURCHASE", "response_code": "19000", "status": "19"}, S.PENDING, None),
    ({"command": "CAPTURE", "response_code": "04000", "status": "04"}, S.COMPLETED, None),
    ({"command": "VOID_AUTHORIZATION", "response_code": "08000", "status": "08",
      "amount": "DROP", "currency": "DROP"}, S.VOIDED, None),
])
def test_outcomes_map_to_facts(params: dict[str, str], target: S, attempt: int | None) -> None:
    event = event_of(signed(**params))
    assert event.fact is not None and event.fact.target is target
    assert event.fact.attempt == attempt


@pytest.mark.parametrize("code", ["15777", "20064"])
def test_uncertain_and_on_hold_carry_no_fact(code: str) -> None:
    event = event_of(signed(response_code=code, status=code[:2]))
    assert event.fact is None and event.attention is None
    assert event.resource_kind == "order"  # the ingest queues CHECK_STATUS for the order


def test_an_unmapped_code_flags_the_order() -> None:
    event = event_of(signed(response_code="14999", status="14"))
    assert event.fact is None and event.attention is not None
    assert "14999" in event.attention


def test_a_refused_maintenance_call_moves_nothing() -> None:
    event = event_of(signed(command="REFUND", response_code="07666", status="07",
                            maintenance_reference="op-1"))
    assert event.fact is None and event.resource_kind == "other"


def test_a_reference_not_ours_is_only_stored() -> None:
    event = event_of(signed(merchant_reference="someone-elses"))
    assert event.order_id is None and event.resource_kind == "other"


def test_two_equal_partial_refunds_are_two_facts_and_each_repeats_its_id() -> None:
    one = signed(command="REFUND", response_code="06000", status="06", amount="500",
                 maintenance_reference="op-a")
    two = signed(command="REFUND", response_code="06000", status="06", amount="500",
                 maintenance_reference="op-b")
    f1, f2 = event_of(one).fact, event_of(two).fact
    assert f1 is not None and f2 is not None and f1.target is S.REFUNDED
    assert f1.refund_id != f2.refund_id
    # The S2S answer of the same refund yields the same id as its notification.
    assert f1.refund_id == refund_id_of(parse_result(one))
    assert f1.refund_id is not None and f1.refund_id.endswith("@ord_abc-1@KWD")


@pytest.mark.parametrize(("headers", "body", "check"), [
    (JSON, as_json({**signed(), "amount": "1"}), "signature"),
    (JSON, as_json({**signed(), "extra": "added after signing"}), "signature"),
    (JSON, as_json({k: v for k, v in signed().items() if k != "signature"}), "signature"),
    (JSON, b"not json", "body"),
    (JSON, b"[1, 2]", "body"),
    (JSON, as_json(signed(merchant_identifier="OTHER")), "merchant"),
])
async def test_refused_deliveries(headers: dict[str, str], body: bytes, check: str) -> None:
    with pytest.raises(SignatureError) as caught:
        await VERIFIER.verify(headers, body)
    assert caught.value.check == check
    assert "resp-phrase" not in str(caught.value) and "req-phrase" not in str(caught.value)


def test_marks_take_no_transmission_header_but_a_json_bodys_own_names() -> None:
    """APS sends no transmission header and its event id is the signed parameters' hash: a
    refused delivery is recorded under its body's hash, and under the id and type a JSON body
    names itself by (the doctor's unsigned probe), whatever headers it carries."""
    marks = ApsEventParser().marks({"PAYPAL-TRANSMISSION-ID": "tx-1", "PAYPAL-CERT-URL": "u"},
                                   b'{"id": "probe", "event_type": "X"}')
    assert (marks.transmission_id, marks.cert_url) == (None, None)
    assert (marks.event_id, marks.event_type) == ("probe", "X")
    assert ApsEventParser().marks({}, b"command=PURCHASE&signature=x").event_id is None
