"""Providers as plug-ins: one kit per payment provider, collected by name.

- `base`: what a kit is (`ProviderKit`), what it is lent (`KitContext`) and builds
  (`ProviderParts`);
- `paypal`, `aps`: paywire's own kits;
- `registry`: the kits by name (`register_kit`, `kit_named`, entry points under
  `paywire.providers`).

`paywire.bootstrap.build` builds each kit PAYWIRE_PROVIDERS names; the API serves each one's
deliveries at `POST /webhooks/{name}`.
"""

from paywire.bootstrap.kits.base import KitContext, ProviderKit, ProviderParts
from paywire.bootstrap.kits.registry import (
    ENTRY_POINT_GROUP,
    kit_named,
    kit_names,
    register_kit,
    unregister_kit,
)

__all__ = ["ENTRY_POINT_GROUP", "KitContext", "ProviderKit", "ProviderParts", "kit_named",
           "kit_names", "register_kit", "unregister_kit"]
