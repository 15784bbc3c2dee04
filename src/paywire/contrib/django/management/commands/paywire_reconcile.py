"""`manage.py paywire_reconcile`: `paywire reconcile`, once (for cron)."""

from __future__ import annotations

from typing import ClassVar

from paywire.contrib.django.commands import PaywireCommand


class Command(PaywireCommand):
    """`paywire reconcile`, once (for cron)."""

    help = ("Ask the providers about stuck orders, pending refunds and the truth queue, once.")
    cli: ClassVar[tuple[str, ...]] = ("reconcile",)
