"""`manage.py paywire_worker`: `paywire worker` (the outbox, into the shop's transaction)."""

from __future__ import annotations

from typing import ClassVar

from paywire.contrib.django.commands import PaywireCommand


class Command(PaywireCommand):
    """`paywire worker` (the outbox, into the shop's transaction)."""

    help = ("Deliver paywire's outbox to the shop (its transaction, its signals) until SIGTERM.")
    cli: ClassVar[tuple[str, ...]] = ("worker",)
