"""`manage.py paywire`: Every `paywire` command with settings.PAYWIRE (`manage.py paywire orders list`)."""

from __future__ import annotations

from typing import ClassVar

from paywire.contrib.django.commands import PaywireCommand


class Command(PaywireCommand):
    """Every `paywire` command with settings.PAYWIRE (`manage.py paywire orders list`)."""

    help = "Every `paywire` command with settings.PAYWIRE (`manage.py paywire orders list`)."
    cli: ClassVar[tuple[str, ...]] = ()
