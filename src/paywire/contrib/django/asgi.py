"""Django's ASGI application with paywire's runtime started by the server's lifespan.

    # <project>/asgi.py
    from paywire.contrib.django.asgi import get_asgi_application
    application = get_asgi_application()

HTTP (and websocket) connections go to Django's own ASGI handler unchanged, so paywire's URLs
are served through Django (`views`); the ASGI `lifespan` events, which Django's handler
refuses, start paywire's runtime at start-up (the background jobs run from then on, not from
the first request) and stop it at shutdown. A start-up error fails the server's start-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from paywire.contrib.django import runtime

Message = MutableMapping[str, Any]
ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[Message]],
                    Callable[[Message], Awaitable[None]]], Awaitable[None]]


def get_asgi_application() -> ASGIApp:
    """Django's ASGI application (`django.core.asgi.get_asgi_application()`, which sets Django
    up) whose lifespan runs paywire's runtime."""
    from django.core.asgi import get_asgi_application as django_asgi

    django_app = django_asgi()

    async def application(scope: dict[str, Any],
                          receive: Callable[[], Awaitable[Message]],
                          send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "lifespan":
            await django_app(scope, receive, send)  # type: ignore[arg-type]
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await asyncio.to_thread(runtime.start)
                except Exception as exc:  # noqa: BLE001 (the server reports it and exits)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.to_thread(runtime.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    return application
