"""`manage.py paywire_doctor`: `paywire doctor` with the project's settings."""

from __future__ import annotations

from typing import ClassVar

from paywire.contrib.django.commands import PaywireCommand


class Command(PaywireCommand):
    """`paywire doctor` with the project's settings."""

    help = ("Check paywire's settings, database, provider credentials, webhooks and outbox.")
    cli: ClassVar[tuple[str, ...]] = ("doctor",)
    # The doctor reports a misconfiguration itself, among its other checks.
    requires_system_checks = ()
