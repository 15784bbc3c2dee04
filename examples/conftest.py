"""The example shops' tests use paywire's pytest plugin, as a shop's tests would.

Installed paywire registers it (the `pytest11` entry point `paywire`): a shop needs nothing
here. An editable install made before the entry point existed lacks it, so it is loaded here
then (never twice: pytest refuses a plugin registered twice).
"""

import importlib.metadata

if not any(ep.value == "paywire.testing.plugin"
           for ep in importlib.metadata.entry_points(group="pytest11")):
    pytest_plugins = ["paywire.testing.plugin"]
