"""`paywire doctor`: is this paywire set up right, and if not, the exact fix.

`command` runs the checks and prints them; `store`, `paypal` and `aps` hold the checks of the
database, PayPal and Amazon Payment Services; each returns `checks.Check` rows. What talks to a
provider's API lives with the provider (`paywire.providers.paypal.oauth_probe`,
`paywire.providers.aps.client`); what reads its answer into a fix naming our settings lives here.
"""

from paywire.cli.doctor.command import doctor

__all__ = ["doctor"]
