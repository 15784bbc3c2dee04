"""`manage.py paywire`: every `paywire` command, with settings.PAYWIRE."""

from __future__ import annotations

from typing import ClassVar

from paywire.contrib.django.commands import PaywireCommand


class Command(PaywireCommand):
    """every `paywire` command, with settings.PAYWIRE."""

    help = ("Any paywire command with the project's settings.PAYWIRE: "
            "manage.py paywire orders list")
    cli: ClassVar[tuple[str, ...]] = ()
