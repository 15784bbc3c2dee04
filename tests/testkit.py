"""Constants and small helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import httpx

CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret"


def get_token(base_url: str, client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> str:
    """A bearer token from the emulator's OAuth endpoint."""
    r = httpx.post(f"{base_url}/v1/oauth2/token", auth=(client_id, secret),
                   data={"grant_type": "client_credentials"})
    r.raise_for_status()
    token: str = r.json()["access_token"]
    return token


def auth_headers(base_url: str) -> dict[str, str]:
    """Authorization header with a fresh token."""
    return {"Authorization": f"Bearer {get_token(base_url)}"}


def order_body(value: str = "10.00", currency: str = "USD", **unit: object) -> dict[str, object]:
    """A valid one-unit CAPTURE order body with one item line making up the total."""
    pu: dict[str, object] = {
        "amount": {"currency_code": currency, "value": value,
                   "breakdown": {"item_total": {"currency_code": currency, "value": value}}},
        "items": [{"name": "Mug", "quantity": "1",
                   "unit_amount": {"currency_code": currency, "value": value}}],
    }
    pu.update(unit)
    return {"intent": "CAPTURE", "purchase_units": [pu]}


def approve(client: httpx.Client, order_id: str, scenario: str = "approve") -> dict[str, object]:
    """Approve as the test buyer through the control API."""
    r = client.post(f"/_emulator/orders/{order_id}/approve", json={"scenario": scenario})
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body
