"""paywire: server-priced, crash-proof PayPal payments for Python shops.

`verify_delivery` and `Delivery` (the shop's receiving side, `paywire.delivery.receiver`) and
`embed`, `mount` and `Embedded` (paywire inside a shop's own ASGI app,
`paywire.bootstrap.embed`) are imported when first asked for (PEP 562), so importing any part
of paywire (a Lambda handler module, say) loads neither the receiver and its Standard Webhooks
dependency nor the composition root.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paywire.bootstrap.embed import Embedded, embed, mount
    from paywire.delivery.receiver import Delivery, verify_delivery

__all__ = ["Delivery", "Embedded", "__version__", "embed", "mount", "verify_delivery"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """The names above, imported on first use (see the module's doc)."""
    if name in ("Delivery", "verify_delivery"):
        from paywire.delivery import receiver

        return getattr(receiver, name)
    if name in ("Embedded", "embed", "mount"):
        from paywire.bootstrap import embed

        return getattr(embed, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
