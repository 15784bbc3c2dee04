"""A stateful PayPal sandbox emulator: OAuth, Orders v2, Payments v2, webhooks, faults.

`create_app(config)` returns an ASGI app; `paywire emulator` serves it with uvicorn.
"""

from paywire.emulator.app import create_app
from paywire.emulator.config import AppCredentials, EmulatorConfig

__all__ = ["AppCredentials", "EmulatorConfig", "create_app"]
