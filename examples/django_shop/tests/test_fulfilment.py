"""Fulfilment inside the shop: each announcement applied once in the shop's own transaction
(the dedupe row and the shop's changes commit together), the signals sent inside it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from shop.models import Shipment

from paywire.contrib.django import fulfilment, signals
from paywire.contrib.django.models import ProcessedMessage

pytestmark = pytest.mark.django_db(transaction=True)


def completed(order_id: str = "ord_test1") -> dict[str, Any]:
    return {"type": "order.completed", "order_id": order_id, "status": "COMPLETED",
            "amount": "25.00", "currency": "USD", "provider": "paypal"}


@pytest.fixture
def heard() -> Iterator[list[tuple[str, str]]]:
    """What the signals' receivers heard: (signal, message id)."""
    events: list[tuple[str, str]] = []

    def any_type(sender: type, announcement: signals.Announcement, **kwargs: Any) -> None:
        events.append(("announcement", announcement.message_id))

    def paid(sender: type, announcement: signals.Announcement, **kwargs: Any) -> None:
        events.append(("order_completed", announcement.message_id))

    signals.announcement.connect(any_type)
    signals.order_completed.connect(paid)
    yield events
    signals.announcement.disconnect(any_type)
    signals.order_completed.disconnect(paid)


def test_a_message_delivered_twice_ships_once(heard: list[tuple[str, str]]) -> None:
    """At-least-once delivery, exactly-once effect: the second delivery changes nothing."""
    assert fulfilment.deliver("msg_a1", "order.completed", completed()) is True
    assert fulfilment.deliver("msg_a1", "order.completed", completed()) is False
    assert Shipment.objects.filter(paywire_order_id="ord_test1").count() == 1
    assert list(ProcessedMessage.objects.values_list("message_id", "type", "order_id")) == [
        ("msg_a1", "order.completed", "ord_test1")]
    assert heard == [("announcement", "msg_a1"), ("order_completed", "msg_a1")]


def test_a_failure_rolls_everything_back_and_the_retry_applies(
        heard: list[tuple[str, str]]) -> None:
    """A receiver that raises undoes the shop's changes and the dedupe row alike, so paywire's
    retry of the same message applies it."""

    def broken(sender: type, announcement: signals.Announcement, **kwargs: Any) -> None:
        raise RuntimeError("warehouse offline")

    signals.order_completed.connect(broken)
    try:
        with pytest.raises(RuntimeError, match="warehouse offline"):
            fulfilment.deliver("msg_b1", "order.completed", completed("ord_b"))
    finally:
        signals.order_completed.disconnect(broken)
    assert not Shipment.objects.filter(paywire_order_id="ord_b").exists()
    assert not ProcessedMessage.objects.filter(message_id="msg_b1").exists()
    assert fulfilment.deliver("msg_b1", "order.completed", completed("ord_b")) is True
    assert Shipment.objects.filter(paywire_order_id="ord_b").count() == 1


def test_a_refund_reaches_the_shops_receiver() -> None:
    """The example's receiver of `order_refunded` marks the shipment refunded."""
    fulfilment.deliver("msg_c1", "order.completed", completed("ord_c"))
    fulfilment.deliver("msg_c2", "order.refunded", {**completed("ord_c"),
                                                    "type": "order.refunded"})
    assert Shipment.objects.get(paywire_order_id="ord_c").status == "refunded"
