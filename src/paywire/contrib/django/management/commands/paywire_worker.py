"""`manage.py paywire_worker`: Deliver paywire's outbox to the shop (its transaction, its signals) until SIGINT/SIGTERM."""

from __future__ import annotations

from typing import ClassVar

from paywire.contrib.django.commands import PaywireCommand


class Command(PaywireCommand):
    """Deliver paywire's outbox to the shop (its transaction, its signals) until SIGINT/SIGTERM."""

    help = "Deliver paywire's outbox to the shop (its transaction, its signals) until SIGINT/SIGTERM."
    cli: ClassVar[tuple[str, ...]] = ("worker",)
