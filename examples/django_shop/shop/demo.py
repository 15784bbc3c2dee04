"""The demo's surroundings: paywire's PayPal and APS emulator, set up as this shop's settings
say, the webhook subscription, and the shop's catalog. `manage.py shop_demo` and the tests
both use it."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from shop import catalog

from paywire.emulator import AppCredentials, EmulatorConfig
from paywire.emulator.aps.config import ApsCredentials, ApsEmulatorConfig
from paywire.testing import Emulated, EmulatorServer

PAYPAL_WEBHOOK = "/paywire/webhooks/paypal"
APS_WEBHOOK = "/paywire/webhooks/aps"


def emulator_config(site_url: str, **options: object) -> EmulatorConfig:
    """The emulator as settings.PAYWIRE expects it: its PayPal app, its APS account, APS's
    feedback sent to the shop's paywire URL."""
    paywire = settings.PAYWIRE
    aps = ApsCredentials(access_code=paywire["APS_ACCESS_CODE"],
                         merchant_identifier=paywire["APS_MERCHANT_IDENTIFIER"],
                         request_phrase=paywire["APS_REQUEST_PHRASE"],
                         response_phrase=paywire["APS_RESPONSE_PHRASE"])
    feedback = f"{site_url}{APS_WEBHOOK}"
    return EmulatorConfig(
        apps=[AppCredentials(paywire["PAYPAL_CLIENT_ID"], paywire["PAYPAL_CLIENT_SECRET"])],
        aps=ApsEmulatorConfig(credentials=aps, direct_feedback_url=feedback,
                              notification_feedback_url=feedback,
                              feedback_time_scale=0.01),
        **options)  # type: ignore[arg-type]


def configure(site_url: str, emulator_url: str, webhook_id: str) -> None:
    """Point settings.PAYWIRE at this emulator and site (the next paywire start reads it)."""
    settings.PAYWIRE.update({
        "PAYPAL_BASE_URL": emulator_url,
        "PAYPAL_WEBHOOK_ID": webhook_id,
        "APS_API_URL": f"{emulator_url}/aps/FortAPI/paymentApi",
        "APS_PAGE_URL": f"{emulator_url}/aps/FortAPI/paymentPage",
        "APS_RETURN_URL": f"{site_url}/paywire/v1/aps/return",
        "RETURN_URL": f"{site_url}/return",
        "CANCEL_URL": f"{site_url}/",
    })


def prepare_database(verbosity: int = 1) -> Path:
    """Migrate (the shop's tables and paywire's), seed the products, write the catalog."""
    Path(settings.DATA_DIR).mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=verbosity, interactive=False)
    catalog.seed()
    return catalog.export(Path(settings.PAYWIRE["CATALOG_PATH"]))


def start_emulator(site_url: str, port: int | None = None) -> Emulated:
    """The emulator, serving, with the shop's PayPal webhook URL subscribed and
    settings.PAYWIRE pointed at both (`.server.stop()` stops it)."""
    config = emulator_config(site_url)
    server = EmulatorServer(config, port=port)
    server.start()
    emulated = Emulated(server, config.apps[0])
    configure(site_url, server.url, emulated.subscribe(f"{site_url}{PAYPAL_WEBHOOK}"))
    return emulated
