"""An Amazon Payment Services (APS) sandbox emulator: S2S API, hosted page, feedback, faults.

`create_aps_app(config)` returns a self-contained Starlette app (its own credentials, state and
feedback deliverer); the main emulator mounts it under its own path prefix. Like the PayPal
emulator it stands alone: it imports nothing of paywire's core, only the generic emulator
modules (`faults`, `clock`).
"""

from paywire.emulator.aps.app import create_aps_app
from paywire.emulator.aps.config import ApsCredentials, ApsEmulatorConfig

__all__ = ["ApsCredentials", "ApsEmulatorConfig", "create_aps_app"]
