"""`manage.py paywire_reconcile`: Ask the providers about stuck orders, pending refunds and the truth queue, once (cron)."""

from __future__ import annotations

from typing import ClassVar

from paywire.contrib.django.commands import PaywireCommand


class Command(PaywireCommand):
    """Ask the providers about stuck orders, pending refunds and the truth queue, once (cron)."""

    help = "Ask the providers about stuck orders, pending refunds and the truth queue, once (cron)."
    cli: ClassVar[tuple[str, ...]] = ("reconcile",)
