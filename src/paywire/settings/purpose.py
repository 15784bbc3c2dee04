"""What a process loads its settings for, when it needs less than a shop taking payments.

Some processes never use part of what a shop needs, and their settings must load without it:
`paywire webhooks register|list|delete` make the webhook id, so they need neither it nor a
catalog; a process that only moves the outbox (the AWS SQS consumer, drainer and stream
function) calls no provider and verifies no webhook, so it is given neither provider secret
and needs no provider credentials, webhook id, APS secrets nor catalog.

The purpose is an argument of the load (`Settings.load(purpose=Purpose.OUTBOX)`), never a
field: no environment variable, `.env` line or SSM parameter can claim it, and each relaxed load
says so where it is made. The settings it gives carry it (`settings.purpose`).
"""

from __future__ import annotations

from enum import StrEnum


class Purpose(StrEnum):
    """What the settings are loaded for; each relaxes only the requirements named here."""

    # Everything a shop that takes payments needs (the default).
    SHOP = "shop"
    # `paywire webhooks register|list|delete`: no webhook id (they make it), no catalog.
    WEBHOOK_SETUP = "webhook_setup"
    # A process that only moves the outbox: no provider credentials (PayPal's client id and
    # secret, APS's secrets, merchant identifier and return URL), no webhook id, no catalog.
    OUTBOX = "outbox"

    @property
    def needs_credentials(self) -> bool:
        """Whether an offered provider's credentials must be set."""
        return self is not Purpose.OUTBOX

    @property
    def needs_webhook_id(self) -> bool:
        """Whether PayPal's webhook id must be set (sandbox and live)."""
        return self is Purpose.SHOP

    @property
    def needs_catalog(self) -> bool:
        """Whether a catalog must be set away from the emulator."""
        return self is Purpose.SHOP
