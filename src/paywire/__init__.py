"""paywire: server-priced, crash-proof PayPal payments for Python shops.

`verify_delivery` and `Delivery` (the shop's receiving side, `paywire.delivery.receiver`) are
imported when first asked for (PEP 562), so importing any part of paywire (a Lambda handler
module, say) does not load the receiver and its Standard Webhooks dependency.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paywire.delivery.receiver import Delivery, verify_delivery

__all__ = ["Delivery", "__version__", "verify_delivery"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """`verify_delivery` and `Delivery`, imported on first use (see the module's doc)."""
    if name in ("Delivery", "verify_delivery"):
        from paywire.delivery import receiver

        return getattr(receiver, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
