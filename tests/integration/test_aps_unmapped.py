"""An APS answer no rule covers is never guessed at: the order is flagged for a person.

The emulator answers only published codes, so the one seam mocked here is APS's HTTP answer:
an `httpx.MockTransport` that signs (with the account's response phrase) a CHECK_STATUS answer
whose transaction code is unpublished. Everything else is real: the checkout service, the
operation keys and a migrated SQLite store.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from apikit import open_store, sqlite_url
from paywire.domain.errors import ProviderError
from paywire.domain.money import Money
from paywire.domain.order import Intent, OrderLine, OrderStatus
from paywire.providers.aps.client import ApsClient
from paywire.providers.aps.forms import Merchant
from paywire.providers.aps.provider import ApsProvider
from paywire.providers.aps.signature import Signer
from paywire.services.checkout import Checkout
from paywire.services.registry import ProviderRegistry
from paywire.store import migrate

SIGNER = Signer("SHA-512", "request-phrase-x", "response-phrase-y")
MERCHANT = Merchant(access_code="ACC", merchant_identifier="MID", signer=SIGNER)


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def answer(request: httpx.Request) -> httpx.Response:
    sent = json.loads(request.content)
    out = {k: sent[k] for k in ("access_code", "merchant_identifier", "language",
                                "query_command", "merchant_reference")}
    out.update({"response_code": "12000", "response_message": "Success", "status": "12",
                "fort_id": "1700000000001", "transaction_status": "14",
                "transaction_code": "14999", "transaction_message": "??",
                "captured_amount": "1500", "authorized_amount": "1500", "refunded_amount": "0"})
    return httpx.Response(200, json={**out, "signature": SIGNER.response_signature(out)})


async def test_an_unpublished_code_flags_the_order_and_resumes_later(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    migrate.upgrade(url)
    store = open_store(url)
    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    client = ApsClient("https://aps.test/FortAPI/paymentApi", MERCHANT, http=http)
    aps = ApsProvider(client, return_url="https://pay.example/v1/aps/return")
    checkout = Checkout(store, ProviderRegistry(aps), Clock())
    try:
        line = OrderLine("mug", "Mug", 1, Money(1500, "AED"))
        order = await checkout.create_order([line], Intent.CAPTURE,
                                            metadata={"customer_email": "b@example.com"})
        with pytest.raises(ProviderError) as caught:
            await checkout.capture(order.id)
        assert caught.value.kind == "unknown"
        flagged = await checkout.orders.get(order.id)
        assert flagged.status is OrderStatus.CREATED  # nothing guessed
        assert flagged.needs_attention == "aps_unmapped:14999"
        assert flagged.capture_attempt == 1  # the attempt is not spent
        async with store.transaction() as uow:
            types = [m.type for m in await uow.outbox_for_order(order.id)]
            op = await uow.get_operation(f"{order.id}:capture:1")
        assert types == ["order.needs_attention"]
        assert op is not None and op.status == "pending"  # resumed under the same key
        with pytest.raises(ProviderError):
            await checkout.capture(order.id)
        async with store.transaction() as uow:  # flagged once per reason
            assert [m.type for m in await uow.outbox_for_order(order.id)] == types
    finally:
        await http.aclose()
        await store.close()
