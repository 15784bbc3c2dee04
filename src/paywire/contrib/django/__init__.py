"""paywire in a Django project (`pip install 'paywire[django]'`; docs/django.md).

Add `"paywire.contrib.django"` to `INSTALLED_APPS`, configure `PAYWIRE = {...}` in the
project's settings (the `PAYWIRE_*` variables' names without `PAYWIRE_`, the same checks), and
include its URLs (`path("paywire/", include("paywire.contrib.django.urls"))`). Then:

- `conf`: `settings.PAYWIRE` (and the Django database paywire stores in) as paywire's
  `Settings`; the keys only Django has (`DATABASE_ALIAS`, `MIGRATE_WITH_DJANGO`);
- `checks`: a misconfiguration is a Django system check error (`manage.py check`, `runserver`,
  `migrate`), named by its key;
- `runtime`: paywire's app and background jobs (truth fetcher, outbox worker, reconciler),
  once per process on an event loop of their own; `views`/`urls`: Django views that hand each
  request, raw body and all, to that app; `asgi`: Django's ASGI application with the runtime
  started and stopped by the server's lifespan;
- `fulfilment`: each announcement applied in the shop's own `transaction.atomic()`, deduplicated
  on its message id by a row of `models.ProcessedMessage` in the same transaction; `signals`:
  Django signals sent inside it;
- `management/commands`: `paywire` (every `paywire` command), `paywire_migrate`,
  `paywire_reconcile`, `paywire_worker`, `paywire_doctor`: the CLI's own commands, reading
  `settings.PAYWIRE`.

paywire's tables live in the project's database (`DATABASE_ALIAS`, default `default`; SQLite
on a file, or PostgreSQL), created by paywire's own Alembic migrations, the one schema truth:
`manage.py paywire_migrate`, and `manage.py migrate` runs them too (`MIGRATE_WITH_DJANGO`).
"""
