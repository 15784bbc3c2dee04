"""Django views that serve paywire's API and webhook endpoints through paywire's own app.

`endpoint` is an async view (under ASGI Django runs it on the server's loop; under WSGI in one
of its own): it turns the Django request into an ASGI `http` scope whose `root_path` is where
the project included paywire's URLs, hands it with the raw request body (`request.body`, the
bytes as received: a webhook's signature is checked on exactly those) to paywire's app on the
runtime's loop (`runtime`), and answers what paywire answered, status, headers and body
unchanged. So the routes, the error bodies, the API keys, the webhook verification and
idempotency are paywire's, not a second copy. CSRF does not apply (the API authenticates with
bearer keys or serves the buyer's own order; webhooks are signed); Django's other middleware
does (security headers, logging).

The view returns once paywire has sent the whole response; work paywire does after answering
(a webhook's inline confirmation with the provider) goes on in the runtime without holding the
Django request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import MutableMapping
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from paywire.contrib.django import runtime

# Response headers Django sets itself (a second Content-Length would be wrong).
_SKIP = frozenset({"content-length"})


@csrf_exempt
async def endpoint(request: HttpRequest, path: str = "") -> HttpResponse:
    """Serve one request of paywire's (`<include prefix>/<path>`) through its app."""
    running = await asyncio.to_thread(runtime.get)  # start-up may touch the database
    answered: concurrent.futures.Future[tuple[int, list[tuple[bytes, bytes]], bytes]] = (
        concurrent.futures.Future())
    running.call(_serve(running, _scope(request, path), request.body, answered))
    status, headers, body = await asyncio.wrap_future(answered)
    response = HttpResponse(body, status=status)
    seen: set[str] = set()
    for name, value in headers:
        header = name.decode("latin-1").lower()
        if header in _SKIP:
            continue
        text = value.decode("latin-1")
        if header in seen:  # a repeated header, as HTTP folds it
            text = f"{response.headers[header]}, {text}"
        seen.add(header)
        response.headers[header] = text
    return response


def _scope(request: HttpRequest, path: str) -> dict[str, Any]:
    """The ASGI scope of `request`, rooted where paywire's URLs are included."""
    full = request.path
    root = full[: len(full) - len(path)].rstrip("/") if path and full.endswith(path) else (
        full.rstrip("/"))
    host = request.get_host()
    server_name, _, port = host.rpartition(":") if ":" in host else (host, "", "")
    client = request.META.get("REMOTE_ADDR") or "127.0.0.1"
    headers = [(name.lower().encode("latin-1"), str(value).encode("latin-1"))
               for name, value in request.headers.items()]
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1", "method": request.method or "GET",
        "scheme": request.scheme or "http", "path": full, "raw_path": full.encode(),
        "root_path": root, "query_string": request.META.get("QUERY_STRING", "").encode("latin-1"),
        "headers": headers, "client": (client, 0),
        "server": (server_name, int(port) if port.isdigit() else (
            443 if request.is_secure() else 80)),
    }


async def _serve(running: runtime.Runtime, scope: dict[str, Any], body: bytes,
                 answered: concurrent.futures.Future[tuple[int, list[tuple[bytes, bytes]],
                                                              bytes]]) -> None:
    """Run paywire's app on `scope` and `body` (on the runtime's loop); `answered` gets the
    response as soon as it is complete."""
    sent = False
    status = 500
    headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []
    done = asyncio.Event()

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()  # the client never disconnects before the answer is complete
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = int(message["status"])
            headers = list(message.get("headers") or [])
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body") or b""))
            if not message.get("more_body") and not answered.done():
                answered.set_result((status, headers, b"".join(chunks)))
                done.set()

    try:
        await running.paywire.asgi(scope, receive, send)
    except BaseException as exc:
        if not answered.done():
            answered.set_exception(exc)
        raise
    finally:
        done.set()
        if not answered.done():
            answered.set_exception(RuntimeError("paywire's app answered nothing"))
