"""`manage.py paywire_doctor`: Check paywire's settings, database, provider credentials, webhooks, outbox and orders."""

from __future__ import annotations

from typing import Any, ClassVar

from paywire.contrib.django.commands import PaywireCommand


class Command(PaywireCommand):
    """Check paywire's settings, database, provider credentials, webhooks, outbox and orders."""

    help = "Check paywire's settings, database, provider credentials, webhooks, outbox and orders."
    cli: ClassVar[tuple[str, ...]] = ("doctor",)
    # The doctor reports a misconfiguration itself, with the rest of its checks.
    requires_system_checks: Any = []
