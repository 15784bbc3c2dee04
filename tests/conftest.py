"""Shared fixtures: a real emulator over loopback HTTP and an authenticated client for it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from paywire.emulator import AppCredentials, EmulatorConfig
from paywire.testing import EmulatorServer

CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret"


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """The emulator's configuration; override in a module to change it."""
    return EmulatorConfig(apps=[AppCredentials(CLIENT_ID, CLIENT_SECRET)], record_responses=True,
                          webhook_time_scale=0.001, seed=1234)


@pytest.fixture
def emulator(emulator_config: EmulatorConfig) -> Iterator[EmulatorServer]:
    """A fresh emulator served by uvicorn on a free loopback port."""
    server = EmulatorServer(emulator_config)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def get_token(base_url: str, client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> str:
    """A bearer token from the emulator's OAuth endpoint."""
    r = httpx.post(f"{base_url}/v1/oauth2/token", auth=(client_id, secret),
                   data={"grant_type": "client_credentials"})
    r.raise_for_status()
    token: str = r.json()["access_token"]
    return token


@pytest.fixture
def paypal(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    """An httpx client for the emulator, already holding a bearer token."""
    token = get_token(emulator.url)
    with httpx.Client(base_url=emulator.url, timeout=10,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        yield client
