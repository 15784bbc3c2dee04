"""Shared fixtures: a real emulator over loopback HTTP and an authenticated client for it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from paywire.emulator import AppCredentials, EmulatorConfig
from paywire.testing import EmulatorServer
from testkit import CLIENT_ID, CLIENT_SECRET, get_token


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


@pytest.fixture
def paypal(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    """An httpx client for the emulator, already holding a bearer token."""
    token = get_token(emulator.url)
    with httpx.Client(base_url=emulator.url, timeout=10,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        yield client
