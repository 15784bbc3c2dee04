"""A toy payment provider as a plug-in of its own: a provider, an HMAC-signed webhook verifier,
an event parser and the kit that builds them from its own settings (`PAYWIRE_TOY_*`).

It lives in its own package and reaches paywire only through public seams (the ports and
`paywire.bootstrap.kits.register_kit`): the proof that adding a provider edits no service, no
API route and no composition code.
"""

from toyprovider.kit import ToyKit, ToySettings
from toyprovider.provider import ToyProvider
from toyprovider.webhooks import SIGNATURE, TRANSMISSION, ToyParser, ToyVerifier, sign

__all__ = ["SIGNATURE", "TRANSMISSION", "ToyKit", "ToyParser", "ToyProvider", "ToySettings",
           "ToyVerifier", "sign"]
