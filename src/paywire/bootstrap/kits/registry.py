"""The provider kits by name: paywire's own (PayPal, APS), those registered in code, and those
installed packages announce under the `paywire.providers` entry-point group (each a kit, or a
callable returning one), loaded when a name is not found among those registered.

Registration is process-wide on purpose: the composition root runs wherever settings are
loaded (the API, the CLI, a Lambda function), and a plug-in registered once reaches them all.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from paywire.bootstrap.kits.aps import ApsKit
from paywire.bootstrap.kits.base import ProviderKit
from paywire.bootstrap.kits.paypal import PayPalKit
from paywire.domain.errors import ConfigError

log = logging.getLogger("paywire")

ENTRY_POINT_GROUP = "paywire.providers"
_BUILT_IN: tuple[ProviderKit, ...] = (PayPalKit(), ApsKit())
_kits: dict[str, ProviderKit] = {kit.name: kit for kit in _BUILT_IN}


def register_kit(kit: ProviderKit, *, replace: bool = False) -> None:
    """Offer `kit` under its name; a name already taken is refused unless `replace`."""
    if kit.name in _kits and not replace and _kits[kit.name] is not kit:
        raise ConfigError(f"a provider kit named {kit.name!r} is already registered")
    _kits[kit.name] = kit


def unregister_kit(name: str) -> None:
    """Withdraw the kit called `name` (paywire's own come back: tests restore what they
    changed)."""
    _kits.pop(name, None)
    for kit in _BUILT_IN:
        if kit.name == name:
            _kits[name] = kit


def kit_names() -> list[str]:
    """The names of the kits known now (paywire's own first)."""
    return list(_kits)


def kit_named(name: str) -> ProviderKit:
    """The kit called `name` (ConfigError naming PAYWIRE_PROVIDERS if there is none)."""
    if name not in _kits:
        _load_entry_points()
    kit = _kits.get(name)
    if kit is None:
        raise ConfigError(f"PAYWIRE_PROVIDERS names {name!r}, but no provider kit of that name "
                          f"is installed (known: {', '.join(_kits)})")
    return kit


def _load_entry_points() -> None:
    """Register the installed kits not registered yet (looked at only when a name is not
    found, which is start-up or its failure: cheap enough to look again each time)."""
    for point in entry_points(group=ENTRY_POINT_GROUP):
        loaded = point.load()
        kit: ProviderKit = loaded() if callable(loaded) else loaded
        if kit.name != point.name:
            log.warning("provider kit entry point %r gives a kit named %r: registered under "
                        "the kit's own name", point.name, kit.name)
        if kit.name not in _kits:
            _kits[kit.name] = kit
