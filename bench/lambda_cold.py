"""One cold Lambda-style environment: import the HTTP handler, take one webhook, print peak RSS.

    python bench/lambda_cold.py REQUEST.json

Run by bench/lambda_webhook.py in a fresh interpreter (so nothing the bench itself loaded counts).
REQUEST.json holds `settings` (keyword arguments of `Settings.load`) and `delivery` (a PayPal
delivery: `body_base64`, `headers`). The modules the lean Lambda package leaves out
(deploy/aws/lambda_requirements.py `ABSENT_MODULES`) are refused first, as that package would
refuse them. Prints one JSON line: the answer's status, resident memory (MB) after the
imports and at its peak (`ru_maxrss`, what Lambda's "Max Memory Used" reports for the process;
Lambda's own runtime client adds a few MB to it), and the wall milliseconds of the handler
module's import (Lambda's init) and of the first delivery (settings, container, app, answer).
"""

from __future__ import annotations

import json
import resource
import runpy
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


class Absent:
    """An import hook refusing the modules the lean Lambda package lacks."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        """ModuleNotFoundError for a refused top-level module; else leave it to the others."""
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the Lambda package)",
                                      name=name)


def peak_mb() -> float:
    """This process's peak resident memory in MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """This process's resident memory now, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    """Refuse the absent modules, import the handler, take the delivery, print the figures."""
    request = json.loads(Path(sys.argv[1]).read_text())
    lean = runpy.run_path(str(ROOT / "deploy/aws/lambda_requirements.py"))
    sys.meta_path.insert(0, Absent(lean["ABSENT_MODULES"]))

    import base64

    started = time.perf_counter()
    from paywire.aws.http import HttpApi

    import_ms = 1000 * (time.perf_counter() - started)
    imported = rss_mb()
    from paywire.aws.events import LocalContext, http_answer, http_event  # the bench's, untimed

    def settings() -> Any:
        """The request's settings (what the settings import costs counts as the first
        delivery's: Lambda's default factory imports them there too)."""
        from paywire.settings import Settings

        return Settings.load(**request["settings"])

    handler = HttpApi(settings_factory=settings)
    delivery = request["delivery"]
    event = http_event("POST", "/webhooks/paypal", headers=list(delivery["headers"].items()),
                       body=base64.b64decode(delivery["body_base64"]), base64_body=True)
    started = time.perf_counter()
    answer = http_answer(handler(event, LocalContext(function_name="paywire-http-cold")))
    first_ms = 1000 * (time.perf_counter() - started)
    loaded = sorted({n.split(".")[0] for n in sys.modules} & lean["ABSENT_MODULES"])
    print(json.dumps({"status": answer.status, "rss_after_import_mb": round(imported, 1),
                      "peak_rss_mb": round(peak_mb(), 1), "absent_loaded": loaded,
                      "import_ms": round(import_ms), "first_ms": round(first_ms)}))


if __name__ == "__main__":
    main()
