"""`paywire dev`: the PayPal emulator, paywire's API and the demo shop in one process.

One asyncio loop runs two uvicorn servers: the emulator (default 127.0.0.1:8090) and paywire's
API with the demo shop in front of it (default 127.0.0.1:8000; the shop lives under `/shop/`).
Start-up order matters: the emulator starts first, then a webhook is registered with it for
paywire's `/webhooks/paypal`, then paywire (SQLite under the data directory, migrated on start)
starts configured for the emulator with fixed, printed dev credentials.

Both providers are offered (`providers=paypal,aps`, PayPal the default): card payments go
through the APS emulator the same process serves under `/aps`. Its merchant account is fresh
per start (the credentials are read from the emulator's own config, never printed: the banner
lists the test cards instead); its direct and notification feedback go to paywire's
`/webhooks/aps`, and its hosted page sends the buyer back to paywire's `/v1/aps/return`.

The stack binds its sockets itself before anything starts, so a port in use is a one-line
error naming the option, port 0 picks a free port (tests), and SIGINT/SIGTERM stop every server
through one handler: uvicorn's own per-server signal capture is switched off, because it would
re-raise the signal after shutdown and end the process with a traceback. `paywire.dev.runner`
serves a stack until a signal (`run`) or for a test's block (`running`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import secrets
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from paywire.bootstrap import create_app as create_paywire_app
from paywire.bootstrap.catalog import load_catalog
from paywire.domain.errors import ConfigError
from paywire.emulator import AppCredentials, EmulatorConfig
from paywire.emulator import create_app as create_emulator_app
from paywire.emulator.aps.cards import CARDS
from paywire.emulator.aps.config import ApsCredentials, ApsEmulatorConfig
from paywire.serving import uvicorn_options
from paywire.settings import Settings
from paywire.testing.servers import listening_socket
from paywire.web.shop import ShopConfig, create_shop_app

# The emulator's throwaway sandbox app for local development: printed on purpose.
DEV_CLIENT_ID = "paywire-dev-client-id"
DEV_CLIENT_SECRET = "paywire-dev-client-secret"  # noqa: S105 - a dev-only emulator credential
# The dashboard's password in `paywire dev` when none (and no API key) is configured: printed
# on purpose, as the sandbox app's secret is.
DEV_ADMIN_PASSWORD = "paywire-dev-admin"  # noqa: S105 - a dev-only dashboard password
ADMIN_PATH = "/admin/"
SHOP_PREFIX = "/shop"
WEBHOOK_PATH = "/webhooks/paypal"
APS_WEBHOOK_PATH = "/webhooks/aps"
APS_RETURN_PATH = "/v1/aps/return"
APS_FORTAPI = "/aps/FortAPI"  # the APS emulator's API and payment page, inside the emulator
START_TIMEOUT = 30.0
GRACEFUL_SHUTDOWN = 3


class DevStackError(Exception):
    """The dev stack could not start; the message says why, for the person at the terminal."""


@dataclass(frozen=True)
class DevOptions:
    """What `paywire dev` is told on its command line (port 0 = any free port)."""

    host: str = "127.0.0.1"
    port: int = 8000
    emulator_port: int = 8090
    data_dir: Path = Path(".paywire")
    log_level: str = "info"


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to the stack (several servers share one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class DevFront:
    """paywire's ASGI app with the shop's paths routed to the shop (and `/` redirected to it).

    Everything else, lifespan included, goes to paywire, whose app stays untouched.
    """

    def __init__(self, paywire: ASGIApp, shop: ASGIApp, prefix: str = SHOP_PREFIX) -> None:
        self.paywire = paywire
        self.shop = shop
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path == "/":
                await RedirectResponse(f"{self.prefix}/", status_code=307)(scope, receive, send)
                return
            if path == self.prefix or path.startswith(f"{self.prefix}/"):
                await self.shop(scope, receive, send)
                return
        await self.paywire(scope, receive, send)


def _listen(host: str, port: int, option: str) -> socket.socket:
    """`host`:`port` claimed (bound and listening) before anything starts, so that a port
    given twice, or held by another process, is refused naming `option`."""
    try:
        sock = listening_socket(host, port)
    except OSError as exc:
        raise DevStackError(f"cannot listen on {host}:{port} ({option} {port}): "
                            f"{exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def _url(host: str, sock: socket.socket) -> str:
    port: int = sock.getsockname()[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def dev_settings(options: DevOptions, url: str, emulator_url: str,
                 webhook_id: str | None, fulfilment_secret: str | None = None,
                 aps: ApsCredentials | None = None) -> Settings:
    """paywire's settings for the dev stack: the emulator, its dev app, SQLite in the data dir;
    with `aps` (the APS emulator's merchant account) cards through APS as a second provider.

    Other settings (a catalog, API keys) still come from `PAYWIRE_*` variables and `.env`.
    """
    data_dir = options.data_dir.resolve()
    values: dict[str, Any] = {
        "paypal_env": "emulator",
        "paypal_base_url": emulator_url,
        "paypal_client_id": DEV_CLIENT_ID,
        "paypal_client_secret": DEV_CLIENT_SECRET,
        "data_dir": data_dir,
        "database_url": f"sqlite+aiosqlite:///{data_dir / 'paywire.db'}",
        "return_url": f"{url}{SHOP_PREFIX}/return",
        "cancel_url": f"{url}{SHOP_PREFIX}/cancel",
        "cors_origins": [url],
    }
    if webhook_id is not None:
        values["paypal_webhook_id"] = webhook_id
    if aps is not None:  # the emulator serves APS under /aps
        values.update(providers=["paypal", "aps"], aps_env="emulator",
                      aps_api_url=f"{emulator_url}{APS_FORTAPI}/paymentApi",
                      aps_page_url=f"{emulator_url}{APS_FORTAPI}/paymentPage",
                      aps_access_code=aps.access_code,
                      aps_merchant_identifier=aps.merchant_identifier,
                      aps_request_phrase=aps.request_phrase,
                      aps_response_phrase=aps.response_phrase, aps_sha_type=aps.sha_type,
                      aps_return_url=f"{url}{APS_RETURN_PATH}")
    if fulfilment_secret is not None:  # the demo shop hears announcements, as a shop would
        values.update(fulfilment_url=f"{url}{SHOP_PREFIX}/fulfilment",
                      fulfilment_secret=fulfilment_secret, outbox_worker_enabled=True,
                      outbox_base_delay_seconds=1.0, outbox_max_delay_seconds=60.0)
    # The dashboard's sessions are signed with a secret made for this process (so they end
    # when `paywire dev` does); a configured one is not needed here.
    values["admin_session_secret"] = dev_session_secret()
    settings = Settings.load(**values)
    if not settings.api_keys and settings.admin_password_hash is None:
        # Nothing signs in to the dashboard: the dev password does (`DEV_ADMIN_PASSWORD`).
        settings = Settings.load(**values, admin_password_hash=dev_password_hash())
    return settings


@functools.cache
def dev_session_secret() -> str:
    """A random secret that signs the dev dashboard's sessions (made once per process)."""
    return secrets.token_urlsafe(32)


@functools.cache
def dev_password_hash() -> str:
    """The hash of `DEV_ADMIN_PASSWORD` (made once per process)."""
    from paywire.admin.auth import hash_password

    return hash_password(DEV_ADMIN_PASSWORD)


def dev_password_in_use(settings: Settings) -> bool:
    """Whether the dashboard signs in with `DEV_ADMIN_PASSWORD` (nothing else configured)."""
    if settings.admin_password_hash is None:
        return False
    from paywire.admin.auth import check_password

    return check_password(DEV_ADMIN_PASSWORD, settings.admin_password_hash.get_secret_value())


def catalog_currency(settings: Settings) -> str:
    """The currency the shop's catalog sells in (one catalog, one currency)."""
    catalog = load_catalog(settings.catalog_file)
    return next(iter(catalog.products.values())).unit_price.currency


class DevStack:
    """The emulator and paywire + shop, served from one event loop until `stop()`."""

    def __init__(self, options: DevOptions | None = None) -> None:
        self.options = options or DevOptions()
        self.options.data_dir.mkdir(parents=True, exist_ok=True)
        host = self.options.host
        self._emulator_sock = _listen(host, self.options.emulator_port, "--emulator-port")
        try:
            self._sock = _listen(host, self.options.port, "--port")
        except DevStackError:
            self._emulator_sock.close()
            raise
        self.url = _url(host, self._sock)
        self.emulator_url = _url(host, self._emulator_sock)
        self.credentials = AppCredentials(DEV_CLIENT_ID, DEV_CLIENT_SECRET)
        self.webhook_id: str | None = None
        # One emulator process, two providers: APS (a fresh merchant account) under /aps, its
        # feedback channels aimed at paywire's /webhooks/aps.
        self.emulator_config = EmulatorConfig(apps=[self.credentials], aps=ApsEmulatorConfig(
            direct_feedback_url=self.aps_webhook_url,
            notification_feedback_url=self.aps_webhook_url))
        try:  # settings and catalog checked before anything starts
            self.settings = self._settings()
            self.currency = catalog_currency(self.settings)
        except ConfigError:
            self._emulator_sock.close()
            self._sock.close()
            raise
        self.emulator_app = create_emulator_app(self.emulator_config)
        # A fresh Standard Webhooks secret per start, shared by paywire and the demo shop.
        self.fulfilment_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.ready = threading.Event()
        # False once `paywire.logs` serves uvicorn's loggers (JSON lines): uvicorn then leaves
        # its logging alone instead of installing its own text handlers over them.
        self.uvicorn_logging = True
        self._servers: list[_Server] = []
        self._stopping = False

    @property
    def shop_url(self) -> str:
        """The demo shop's product page."""
        return f"{self.url}{SHOP_PREFIX}/"

    @property
    def webhook_url(self) -> str:
        """Where the emulator delivers webhooks."""
        return f"{self.url}{WEBHOOK_PATH}"

    @property
    def aps_webhook_url(self) -> str:
        """Where the APS emulator sends its direct and notification feedback."""
        return f"{self.url}{APS_WEBHOOK_PATH}"

    @property
    def aps_credentials(self) -> ApsCredentials:
        """The APS emulator's merchant account (fresh per start; never printed)."""
        return self.emulator_config.aps.credentials

    def _settings(self, fulfilment_secret: str | None = None) -> Settings:
        return dev_settings(self.options, self.url, self.emulator_url, self.webhook_id,
                            fulfilment_secret, aps=self.aps_credentials)

    def shop_config(self) -> ShopConfig:
        """The demo shop's configuration: PayPal's SDK from the emulator, cards through APS
        when paywire offers them."""
        settings = self.settings
        page_url = settings.aps.urls(settings.paypal)[1] if "aps" in settings.providers else None
        return ShopConfig(paypal_sdk_base=self.emulator_url, client_id=DEV_CLIENT_ID,
                          currency=self.currency, prefix=SHOP_PREFIX,
                          fulfilment_secret=self.fulfilment_secret, card_page_url=page_url)

    def _server(self, app: ASGIApp) -> _Server:
        extra: dict[str, Any] = {} if self.uvicorn_logging else {"log_config": None}
        server = _Server(uvicorn.Config(app, log_level=self.options.log_level, lifespan="on",
                                        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
                                        **uvicorn_options(), **extra))
        self._servers.append(server)
        return server

    def _paywire_front(self) -> ASGIApp:
        self.settings = self._settings(self.fulfilment_secret)
        paywire = create_paywire_app(self.settings)
        return DevFront(paywire, create_shop_app(self.shop_config()))

    async def register_webhook(self) -> str:
        """Subscribe paywire's webhook URL to every event type at the emulator; its id."""
        async with httpx.AsyncClient(base_url=self.emulator_url, timeout=10) as client:
            token = await client.post("/v1/oauth2/token", data={"grant_type": "client_credentials"},
                                      auth=(DEV_CLIENT_ID, DEV_CLIENT_SECRET))
            token.raise_for_status()
            bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
            created = await client.post("/v1/notifications/webhooks", headers=bearer, json={
                "url": self.webhook_url, "event_types": [{"name": "*"}]})
            created.raise_for_status()
        webhook_id: str = created.json()["id"]
        return webhook_id

    async def serve(self, on_ready: Callable[[DevStack], None] | None = None) -> None:
        """Run until `stop()`: emulator, webhook registration, paywire; then stop them all."""
        tasks: list[asyncio.Task[None]] = []
        try:
            emulator = self._server(self.emulator_app)
            tasks.append(self._start(emulator, self._emulator_sock, "the PayPal emulator"))
            await self._wait_started(emulator, tasks)
            if self._stopping:
                return
            try:
                self.webhook_id = await self.register_webhook()
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                raise DevStackError(f"could not register the webhook with the emulator: "
                                    f"{exc!r}") from exc
            await self.before_paywire()
            paywire = self._server(self._paywire_front())
            tasks.append(self._start(paywire, self._sock, "paywire"))
            await self._wait_started(paywire, tasks)
            if self._stopping:
                return
            await self.after_paywire()
            if on_ready is not None:
                on_ready(self)
            self.ready.set()
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._exit_all()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            await self.cleanup()
            self._emulator_sock.close()
            self._sock.close()
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def before_paywire(self) -> None:
        """Hook: runs once the emulator is up and the webhook registered (`dev --aws`)."""

    async def after_paywire(self) -> None:
        """Hook: runs once paywire serves (`dev --aws` starts its schedules here)."""

    async def cleanup(self) -> None:
        """Hook: runs after every server stopped."""

    def _start(self, server: _Server, sock: socket.socket, name: str) -> asyncio.Task[None]:
        async def run() -> None:
            try:
                await server.serve(sockets=[sock])
            except SystemExit as exc:  # uvicorn exits when an app's lifespan start-up fails
                raise DevStackError(f"{name} failed to start (see the log above)") from exc
            if not server.started and not self._stopping:
                raise DevStackError(f"{name} stopped before it started (see the log above)")

        coro: Coroutine[Any, Any, None] = run()
        return asyncio.create_task(coro, name=f"paywire-dev: {name}")

    async def _wait_started(self, server: _Server, tasks: list[asyncio.Task[None]]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while not server.started and not self._stopping:
            for task in tasks:
                if task.done():
                    task.result()  # raises the start-up error
                    raise DevStackError("a server stopped during start-up")
            if loop.time() > deadline:
                raise DevStackError(f"servers did not start within {START_TIMEOUT:.0f} s")
            await asyncio.sleep(0.02)

    def banner(self) -> list[str]:
        """What the command prints once everything is up."""
        return banner(self)

    def stop(self) -> None:
        """Ask every server to stop; asked again, stop without waiting for open connections."""
        if self._stopping:
            for server in self._servers:
                server.force_exit = True
        self._exit_all()

    def _exit_all(self) -> None:
        self._stopping = True
        for server in self._servers:
            server.should_exit = True


def banner(stack: DevStack) -> list[str]:
    """What `paywire dev` prints once everything is up."""
    data_dir = stack.settings.data_dir
    return [
        "paywire dev: the PayPal emulator, paywire's API and the demo shop, in one process",
        f"  demo shop        {stack.shop_url}",
        f"  paywire API      {stack.url}/v1   (OpenAPI docs: {stack.url}/docs)",
        f"  dashboard        {stack.url}{ADMIN_PATH}   "
        + (f"(sign in with the dev password {DEV_ADMIN_PASSWORD})"
           if dev_password_in_use(stack.settings) else "(sign in with an API key or the "
           "configured password)"),
        f"  PayPal emulator  {stack.emulator_url}   (control API: {stack.emulator_url}/_emulator/)",
        f"  sandbox app      client id {DEV_CLIENT_ID}, secret {DEV_CLIENT_SECRET}",
        f"  data             SQLite under {data_dir}",
        f"  webhooks         {stack.webhook_id} registered for {stack.webhook_url} (all events);",
        f"                   deliveries: {stack.emulator_url}/_emulator/deliveries",
        f"  fulfilment       signed callbacks to {stack.url}{SHOP_PREFIX}/fulfilment",
        *aps_banner(stack),
        "Press Ctrl-C to stop.",
    ]


def aps_banner(stack: DevStack) -> list[str]:
    """The banner's card-payment lines: where cards go, and the emulator's test cards."""
    if "aps" not in stack.settings.providers:
        return []
    width = max(len(c.number) for c in CARDS)
    return [
        f"  card payments    through the APS emulator: {stack.emulator_url}{APS_FORTAPI}/ "
        f"(control API: {stack.emulator_url}/aps/_aps/)",
        f"                   feedback to {stack.aps_webhook_url}; buyers return to "
        f"{stack.url}{APS_RETURN_PATH}",
        "  test cards       (any future expiry YYMM, any 3-digit security code)",
        *(f"                   {c.number:<{width}}  {c.brand:<10}  {c.label}" for c in CARDS),
    ]
