"""paywire: server-priced, crash-proof PayPal payments for Python shops."""

from paywire.delivery.receiver import Delivery, verify_delivery

__all__ = ["Delivery", "__version__", "verify_delivery"]

__version__ = "0.1.0"
