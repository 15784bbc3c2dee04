"""The Django app: its label (`paywire`), the settings check, and paywire's migrations run by
`manage.py migrate`.

Storage: paywire's tables live in the project's own database (`DATABASE_ALIAS`), created by
paywire's Alembic migrations, the same scripts `paywire migrate` runs and `paywire doctor`
compares, so the schema has one truth and no Django model restates it. `manage.py
paywire_migrate` runs them, and so does `manage.py migrate` of that database (a `post_migrate`
receiver; `MIGRATE_WITH_DJANGO = False` turns it off): a fresh database, a deploy's migrate
step and the test databases Django's test runner or pytest-django builds all get paywire's
tables without a second command. The shop-side dedupe table (`models.ProcessedMessage`) is the
shop's, so it is an ordinary Django migration.
"""

from __future__ import annotations

import sys
from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.db.models.signals import post_migrate


class PaywireConfig(AppConfig):
    """paywire in a Django project (`INSTALLED_APPS += ["paywire.contrib.django"]`)."""

    name = "paywire.contrib.django"
    label = "paywire"
    verbose_name = "paywire"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from paywire.contrib.django.checks import check_settings

        checks.register(check_settings, "paywire")
        post_migrate.connect(migrate_paywire, sender=self,
                             dispatch_uid="paywire.contrib.django.migrate")


def migrate_paywire(sender: AppConfig, using: str, verbosity: int = 1, **kwargs: Any) -> None:
    """After `manage.py migrate` of paywire's database: its Alembic migrations to head."""
    from paywire.contrib.django import conf
    from paywire.store import migrate

    own = conf.options()
    if not own.migrate_with_django or using != own.database_alias:
        return
    url = conf.paywire_database_url()
    newest = migrate.head()
    if migrate.current(url) == newest:
        return
    migrate.upgrade(url)
    if verbosity >= 1:
        out = kwargs.get("stdout") or sys.stdout
        out.write(f"  paywire's tables migrated to revision {newest} (alembic)\n")
