"""`manage.py shop_demo`: the whole demo in one command: the emulator (PayPal and APS), the
database (the shop's tables and paywire's), the products, and the shop under uvicorn through
Django's ASGI handler, paywire's runtime started by the server's lifespan. Ctrl-C stops it."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Run the sample shop with paywire's emulator (http://127.0.0.1:8000/)."
    # Checked once the catalog exists (paywire's check reads it).
    requires_system_checks = ()

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--emulator-port", type=int, default=8090)

    def handle(self, *args: Any, **options: Any) -> None:
        import uvicorn
        from shop import demo

        from paywire.contrib.django.asgi import get_asgi_application
        from paywire.serving import uvicorn_options

        site = f"http://127.0.0.1:{options['port']}"
        emulator = demo.start_emulator(site, options["emulator_port"])
        try:
            demo.prepare_database(options["verbosity"])
            self.check(display_num_errors=False)
            self.stdout.write(f"shop on {site}/ (PayPal and APS emulator on {emulator.url}; "
                              "test cards on its card page). Ctrl-C stops.")
            uvicorn.run(get_asgi_application(), host="127.0.0.1", port=options["port"],
                        lifespan="on", log_level="warning", **uvicorn_options())
        finally:
            emulator.server.stop()
