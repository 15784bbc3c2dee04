"""`manage.py paywire_migrate`: paywire's tables in the project's database to the newest schema (its Alembic migrations)."""

from __future__ import annotations

from typing import ClassVar

from paywire.contrib.django.commands import PaywireCommand


class Command(PaywireCommand):
    """paywire's tables in the project's database to the newest schema (its Alembic migrations)."""

    help = "paywire's tables in the project's database to the newest schema (its Alembic migrations)."
    cli: ClassVar[tuple[str, ...]] = ("migrate",)
