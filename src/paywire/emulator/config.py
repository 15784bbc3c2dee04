"""The whole emulator's configuration: PayPal's fields, plus Amazon Payment Services under `aps`.

`EmulatorConfig(apps=..., aps=...)` has been the emulator's public face since APS joined, so it
stays one flat object: PayPal's settings are inherited from `PayPalConfig` (which the PayPal
package alone reads) and APS's arrive whole in `aps` (which the APS package alone reads). Neither
provider package imports this module; only the composition (`app.py`, `__main__.py`) does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from paywire.emulator.aps.config import ApsEmulatorConfig
from paywire.emulator.paypal.config import AppCredentials, PayPalConfig

__all__ = ["AppCredentials", "EmulatorConfig"]


@dataclass
class EmulatorConfig(PayPalConfig):
    """Everything the emulator can be told at start; every field has the provider's default."""

    # Amazon Payment Services, served under /aps by the same process (its own credentials).
    aps: ApsEmulatorConfig = field(default_factory=ApsEmulatorConfig)
