"""Test helpers paywire's users get too, and the pytest plugin for shops.

- `servers`: any ASGI app on a free loopback port (`ServerThread`, `serving`), the emulator
  (`EmulatorServer`, `run_emulator`), a moto server process (`MotoServer`, `run_moto`);
- `emulated`: the emulator as a shop's tests drive it (`Emulated`: approve or decline without a
  browser, its clock, fault rules, webhook subscriptions, deliveries signed as PayPal and APS
  sign them);
- `plugin`: the pytest plugin (the `paywire_*` fixtures), registered as the `pytest11` entry
  point `paywire`: installed with paywire, nothing to configure.

The names are imported when first asked for (PEP 562): pytest loads the plugin in every test
run of an environment paywire is installed in, and a run that asks for no `paywire_*` fixture
should not pay for the emulator's imports.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paywire.testing.emulated import (
        Emulated,
        EmulatedClock,
        EmulatedFaults,
        EmulatorError,
        SignedDelivery,
        WebhookSender,
    )
    from paywire.testing.servers import (
        MOTO_LAUNCHER,
        EmulatorServer,
        MotoServer,
        ServerThread,
        free_port,
        free_ports,
        run_emulator,
        run_moto,
        serving,
    )

_SERVERS = ("MOTO_LAUNCHER", "EmulatorServer", "MotoServer", "ServerThread", "free_port",
            "free_ports", "run_emulator", "run_moto", "serving")
_EMULATED = ("Emulated", "EmulatedClock", "EmulatedFaults", "EmulatorError", "SignedDelivery",
             "WebhookSender")

__all__ = [
    "MOTO_LAUNCHER",
    "Emulated",
    "EmulatedClock",
    "EmulatedFaults",
    "EmulatorError",
    "EmulatorServer",
    "MotoServer",
    "ServerThread",
    "SignedDelivery",
    "WebhookSender",
    "free_port",
    "free_ports",
    "run_emulator",
    "run_moto",
    "serving",
]


def __getattr__(name: str) -> Any:
    """The names above, imported on first use (see the module's doc)."""
    if name in _SERVERS:
        from paywire.testing import servers

        return getattr(servers, name)
    if name in _EMULATED:
        from paywire.testing import emulated

        return getattr(emulated, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
