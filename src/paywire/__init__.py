"""paywire: server-priced, crash-proof PayPal payments for Python shops."""

__version__ = "0.1.0"
