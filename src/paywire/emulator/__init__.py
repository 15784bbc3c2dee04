"""A stateful sandbox emulator of PayPal (OAuth, Orders v2, Payments v2, webhooks, disputes) and
Amazon Payment Services (S2S API, hosted page, feedback), with fault injection.

`create_app(config)` returns an ASGI app; `paywire emulator` or `python -m paywire.emulator`
serves it with uvicorn. The providers are sibling packages (`paypal/`, `aps/`) that share only
the generic `clock` and `faults`; `app` and `config` compose them. Nothing here imports the rest
of paywire (README.md in this directory says why it still ships inside paywire).
"""

from paywire.emulator.app import Emulator, create_app
from paywire.emulator.config import AppCredentials, EmulatorConfig

__all__ = ["AppCredentials", "Emulator", "EmulatorConfig", "create_app"]
