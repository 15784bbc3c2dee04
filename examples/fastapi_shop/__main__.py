"""`python -m examples.fastapi_shop` (`make example-fastapi`): the shop on
http://127.0.0.1:8000 with paywire mounted under /pay.

Offline by default: a PayPal emulator is served beside it (its buyer's approval page stands in
for PayPal's), paywire's webhook URL subscribed there. With `PAYWIRE_PAYPAL_CLIENT_ID` set, the
shop talks to whatever the `PAYWIRE_*` settings name instead (PayPal's sandbox, say: then
register `<public URL>/pay/webhooks/paypal` with PayPal and set `PAYWIRE_PAYPAL_WEBHOOK_ID`).
Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from paywire.emulator import AppCredentials, EmulatorConfig
from paywire.serving import uvicorn_options
from paywire.settings import Settings
from paywire.testing import Emulated, EmulatorServer

from .app import CATALOG, PAYWIRE_PREFIX, create_app


@contextlib.contextmanager
def paypal(base: str, data_dir: Path, emulator_port: int) -> Iterator[Settings]:
    """paywire's settings: from the environment, or for an emulator served meanwhile."""
    pages: dict[str, Any] = {"catalog_path": CATALOG, "return_url": f"{base}/return",
                             "cancel_url": f"{base}/cancel"}
    if os.environ.get("PAYWIRE_PAYPAL_CLIENT_ID"):
        yield Settings.load(data_dir=data_dir, **pages)
        return
    app = AppCredentials.generate()
    server = EmulatorServer(EmulatorConfig(apps=[app]), port=emulator_port)
    server.start()
    try:
        print(f"PayPal emulator on {server.url} (its control API: {server.url}/_emulator/)")
        yield Emulated(server, app).settings(data_dir, paywire_url=f"{base}{PAYWIRE_PREFIX}",
                                             **pages)
    finally:
        server.stop()


def main() -> None:
    """Serve the shop until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m examples.fastapi_shop",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--emulator-port", type=int, default=8090)
    parser.add_argument("--data-dir", type=Path, default=Path(".paywire-example"))
    args = parser.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    with paypal(base, args.data_dir, args.emulator_port) as settings:
        app = create_app(settings, args.data_dir)
        print(f"Coffee shop on {base}/ (paywire's API under {base}{PAYWIRE_PREFIX}/v1, "
              f"PayPal's webhooks to {base}{PAYWIRE_PREFIX}/webhooks/paypal)")
        # paywire's parser settings: httptools with a bound on a request's head when
        # paywire[speed] is installed, h11 otherwise (paywire.serving).
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="info", **uvicorn_options())


if __name__ == "__main__":
    main()
