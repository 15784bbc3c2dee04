"""PayPal: REST flows (client.py) and the pure wire <-> domain mapping (mapping.py)."""
