"""paywire's settings as a Django system check: `manage.py check`, `runserver` and `migrate`
refuse a misconfiguration with a message naming its `settings.PAYWIRE` key.

The check builds the settings exactly as the runtime and the commands do (`conf`), and imports
the shop's `FULFILMENT_CALLABLE`; nothing is contacted (`manage.py paywire_doctor` does that).
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error

from paywire.contrib.django import conf
from paywire.domain.errors import ConfigError


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """paywire.E001 for settings that cannot work, paywire.E002 for a fulfilment function that
    cannot be imported."""
    try:
        conf.paywire_settings()
    except ConfigError as exc:
        return [Error(exc.message, hint="fix the named key of settings.PAYWIRE (docs/django.md)",
                      id="paywire.E001")]
    try:
        conf.handler()
    except ConfigError as exc:
        return [Error(exc.message, id="paywire.E002")]
    return []
