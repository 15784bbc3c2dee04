"""Helpers for the trace suites: a shop that keeps each callback's headers, and paywire's log
lines captured as `paywire serve` writes them."""

from __future__ import annotations

import base64
import io
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paywire import logs, verify_delivery
from paywire.domain.errors import SignatureError
from paywire.testing import ServerThread

WHSEC = "whsec_" + base64.b64encode(b"paywire-trace-test-shop-secret-0").decode()


class Shop:
    """The shop's fulfilment endpoint: verifies each callback and keeps its headers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deliveries: list[tuple[Any, dict[str, str]]] = []
        self.refused = 0
        self.server = ServerThread(Starlette(routes=[Route("/fulfil", self.fulfil,
                                                           methods=["POST"])]))

    @property
    def url(self) -> str:
        """The endpoint's URL."""
        return f"{self.server.url}/fulfil"

    async def fulfil(self, request: Request) -> Response:
        """Verify (signature first), then keep the delivery and its headers."""
        try:
            delivery = verify_delivery(await request.body(), request.headers, WHSEC)
        except SignatureError:
            self.refused += 1
            return Response(status_code=400)
        with self.lock:
            self.deliveries.append((delivery, dict(request.headers)))
        return Response(status_code=204)


@contextmanager
def json_lines() -> Iterator[io.StringIO]:
    """paywire's log lines at INFO, as `paywire serve` writes them (JSON, the trace fields
    added, redacted), into a buffer for the block."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.TraceFields())
    logger = logging.getLogger("paywire")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
