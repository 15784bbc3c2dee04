"""Constants and small helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import os
from typing import Any

import httpx

from paywire.emulator import AppCredentials, EmulatorConfig
from paywire.testing import EmulatorServer

CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret"
OTHER_ID, OTHER_SECRET = "other-client-id", "other-client-secret"


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


def two_app_config() -> EmulatorConfig:
    """The test app plus a second one, for "another app's resource" checks."""
    return EmulatorConfig(apps=[AppCredentials(CLIENT_ID, CLIENT_SECRET),
                                AppCredentials(OTHER_ID, OTHER_SECRET)],
                          record_responses=True, webhook_time_scale=0.001, seed=1234)


def usd(value: str) -> dict[str, str]:
    """A USD money object."""
    return {"currency_code": "USD", "value": value}


def events(emulator: EmulatorServer, event_type: str) -> list[dict[str, Any]]:
    """Webhook events of one type the emulator published, oldest first."""
    return [e for e in emulator.emu.events.values() if e["event_type"] == event_type]

# Whether the suite runs under CI (`.ci/run` sets CI=true): derandomized, nothing skipped.
IN_CI = os.environ.get("CI") == "true"
