"""Each announcement applied exactly once in the shop's own database transaction.

paywire's outbox delivers every message at least once (a crash between the shop's commit and
the outbox's "delivered" mark delivers it again) under a stable message id. `deliver` is what
the outbox calls in a Django project (`conf.DELIVER`, a Python callable target run in a worker
thread): in one `transaction.atomic()` on the shop's database it inserts the message's
`ProcessedMessage` row, calls the shop's `FULFILMENT_CALLABLE` with `(message_id, type,
payload)` and sends the signals (`signals`). The row's primary key is the message id, so a
second delivery (even a concurrent one: PostgreSQL makes the second insert wait for the
first's outcome) finds it and changes nothing, and a failure anywhere rolls back the row with
the shop's changes, so the message is delivered again later. "Mark the order paid and ship" is
therefore exactly once from the shop's point of view.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, connections, transaction

from paywire.contrib.django import conf, signals
from paywire.contrib.django.models import ProcessedMessage

log = logging.getLogger("paywire.django")


def deliver(message_id: str, type: str, payload: dict[str, Any]) -> bool:
    """Apply one announcement in the shop's transaction; False if it was applied before.

    Raises whatever the shop's function or a signal receiver raised (after the rollback):
    the outbox then retries the message with backoff.
    """
    alias = conf.options().database_alias
    handler = conf.handler()
    message = signals.Announcement(message_id=message_id, type=type,
                                   order_id=str(payload.get("order_id") or ""),
                                   payload=dict(payload))
    connection = connections[alias]
    outermost = not connection.in_atomic_block
    if outermost:  # a worker thread's connection: as at the start of a request
        connection.close_if_unusable_or_obsolete()
    try:
        with transaction.atomic(using=alias):
            try:
                with transaction.atomic(using=alias):  # a savepoint: only the insert undone
                    ProcessedMessage.objects.using(alias).create(
                        message_id=message_id, type=type, order_id=message.order_id)
            except IntegrityError:
                log.info("paywire message %s (%s) was already processed", message_id, type)
                return False
            if handler is not None:
                handler(message_id, type, dict(payload))
            signals.send(message)
        return True
    finally:
        if outermost:  # as at the end of a request (CONN_MAX_AGE decides)
            connection.close_if_unusable_or_obsolete()
