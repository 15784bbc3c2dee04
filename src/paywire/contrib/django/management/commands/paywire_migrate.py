"""`manage.py paywire_migrate`: `paywire migrate` (paywire's Alembic migrations)."""

from __future__ import annotations

from typing import ClassVar

from paywire.contrib.django.commands import PaywireCommand


class Command(PaywireCommand):
    """`paywire migrate` (paywire's Alembic migrations)."""

    help = ("Migrate paywire's tables in the project's database to the newest schema (Alembic).")
    cli: ClassVar[tuple[str, ...]] = ("migrate",)
