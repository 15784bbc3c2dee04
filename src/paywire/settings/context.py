"""Which command is loading the settings, for the checks that depend on it.

Some processes need less than a shop that takes payments, and their settings must load without
what they never use. The command says so by setting one of these around the load; they are
ContextVars, not fields, so no environment variable can claim them.
"""

from __future__ import annotations

from contextvars import ContextVar

# True while settings load for `paywire webhooks register|list|delete`: the commands that create
# the webhook id need neither it nor a catalog
# (`paywire.cli.common.load_settings(webhook_setup=True)`).
webhook_setup: ContextVar[bool] = ContextVar("paywire_webhook_setup", default=False)
# True while settings load for a process that only moves the outbox (the AWS SQS consumer,
# drainer and stream function): it calls no provider and verifies no webhook, so it is given
# neither provider secret and needs no provider credentials, webhook id, APS secrets nor
# catalog (`paywire.aws.secrets`, `outbox_only`).
outbox_only: ContextVar[bool] = ContextVar("paywire_outbox_only", default=False)
