"""paywire's pytest plugin: the emulated providers as fixtures for a shop's own tests.

Registered as the `pytest11` entry point `paywire`, so installing paywire is all it takes
(`-p no:paywire` turns it off). Every fixture is named `paywire_*` and none is autouse: a test
run that asks for none pays nothing (the emulator's modules are imported by the fixtures).

- `paywire_emulator`: a fresh PayPal + APS emulator on a free loopback port for the test
  (`paywire.testing.Emulated`: `.url`, `.approve(order)`, `.decline(order)`, `.expire(order)`,
  `.subscribe(url)`, `.events(...)`, `.deliveries(...)`, `.settings(...)`); configured by
  `paywire_emulator_config`, which a test module may override;
- `paywire_settings`: paywire's `Settings` for that emulator, SQLite under the test's
  `tmp_path` (`paywire_settings(paywire_url="http://127.0.0.1:PORT/pay")` subscribes paywire's
  webhook URL and sets its id; `aps=True` offers APS too);
- `paywire_webhooks`: deliveries signed as PayPal signs them (and APS feedback as APS does),
  with the emulator's own keys, for the test to send to the shop;
- `paywire_clock`: the emulator's clock (`advance(seconds)`);
- `paywire_faults`: the emulator's fault rules (`add(action=..., ...)`, `clear()`);
- `paywire_serve`: serve an ASGI app (the shop) on loopback for the test (`paywire_serve(app,
  port=...)` returns the running server; `.url`).

docs/embedding.md has a shop's test written with them.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from paywire.emulator import EmulatorConfig
    from paywire.settings import Settings
    from paywire.testing.emulated import (
        Emulated,
        EmulatedClock,
        EmulatedFaults,
        WebhookSender,
    )
    from paywire.testing.servers import ServerThread

# Real seconds per emulated second of the providers' retry schedules: a retried delivery comes
# back in milliseconds, not minutes.
TIME_SCALE = 0.001


@pytest.fixture
def paywire_emulator_config() -> EmulatorConfig:
    """The emulator's configuration: one fresh sandbox app, quick delivery retries. Override
    it in a test module (or conftest) to change it; keep `apps[0]` the app paywire uses."""
    from paywire.emulator import AppCredentials, EmulatorConfig
    from paywire.emulator.aps.config import ApsEmulatorConfig

    return EmulatorConfig(apps=[AppCredentials.generate()], webhook_time_scale=TIME_SCALE,
                          aps=ApsEmulatorConfig(feedback_time_scale=TIME_SCALE))


@pytest.fixture
def paywire_emulator(paywire_emulator_config: EmulatorConfig) -> Iterator[Emulated]:
    """A fresh emulator (PayPal at the root, APS under /aps) on a free loopback port, for this
    test only."""
    from paywire.testing.emulated import Emulated
    from paywire.testing.servers import EmulatorServer

    server = EmulatorServer(paywire_emulator_config)
    server.start()
    try:
        yield Emulated(server, paywire_emulator_config.apps[0])
    finally:
        server.stop()


@pytest.fixture
def paywire_settings(paywire_emulator: Emulated, tmp_path: Path) -> Callable[..., Settings]:
    """`paywire_settings(paywire_url=None, aps=False, **overrides)`: paywire's settings for
    the test's emulator, SQLite under `tmp_path` (`Emulated.settings`)."""
    return functools.partial(paywire_emulator.settings, tmp_path / "paywire")


@pytest.fixture
def paywire_webhooks(paywire_emulator: Emulated) -> WebhookSender:
    """Deliveries signed with the emulator's keys: `.paypal(url, event, webhook_id=...)`,
    `.redeliver(event, url, webhook_id=...)`, `.aps(url, params)`; each `.send()`s."""
    return paywire_emulator.webhooks


@pytest.fixture
def paywire_clock(paywire_emulator: Emulated) -> EmulatedClock:
    """The emulator's clock: `.now()`, `.advance(seconds)` (orders expire as it passes)."""
    return paywire_emulator.clock


@pytest.fixture
def paywire_faults(paywire_emulator: Emulated) -> EmulatedFaults:
    """The emulator's fault rules: `.add(action="error", path=..., status=503, count=1)`,
    `.add(action="duplicate")` for webhook deliveries, `.list()`, `.clear()`."""
    return paywire_emulator.faults


@pytest.fixture
def paywire_serve() -> Iterator[Callable[..., ServerThread]]:
    """`paywire_serve(app, port=None)`: `app` served (its lifespan run) on loopback until the
    test ends; the server (`.url`). Give `port` (`paywire.testing.free_port()`) when a webhook
    must be subscribed for its URL before it starts."""
    from paywire.testing.servers import serving

    with contextlib.ExitStack() as stack:

        def serve(app: Any, port: int | None = None) -> ServerThread:
            return stack.enter_context(serving(app, port=port))

        yield serve
