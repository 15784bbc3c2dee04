"""Outbound HTTP client CPU: httpx's default transport against paywire's lean transport.

    .venv/bin/python bench/http_client.py [--requests 2000] [--concurrency 1 8]
        [--engines httpx lean aiohttp raw-h11 raw-aiohttp]

Why: paywire's calls to PayPal (the webhook confirmation GET, a checkout's create and capture)
cost its process more CPU in the HTTP client than in its own work (docs/benchmarks.md, "Where
the time goes"). This measures the client's CPU alone: a small uvicorn app in a child process
answers `GET /order` with a 1.5 KB JSON order (what PayPal's order GET returns, about) and
echoes `POST /order`'s JSON body (600 bytes, about a create); this process sends the requests
over loopback HTTP with `--concurrency` workers and reads `time.process_time()` around each pass
(the server's CPU is not counted). Engines, each after a warm-up pass of its own:

- `httpx`: `httpx.AsyncClient(timeout=30)`, httpx's default transport (httpcore), as paywire's
  PayPal client had it;
- `lean`: `paywire.providers.http.lean_client` (the same `httpx.AsyncClient` API on
  `LeanTransport`: h11 over kept asyncio connections);
- `aiohttp` (only if aiohttp is importable; not a paywire dependency): `httpx.AsyncClient` on a
  minimal transport that hands each request to one `aiohttp.ClientSession`;
- `raw-h11`: h11 on one kept asyncio connection per worker, no httpx objects at all (what
  httpx's Request/Response layer costs on top of the engine is `lean` minus this);
- `raw-aiohttp`: `aiohttp.ClientSession` alone.

Prints the CPU per request in ms and each engine's ratio to `httpx` in the same run, with the
core count. Not part of `make test` or `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import benchkit
import h11
import httpx

from paywire.providers.http import LeanTransport
from paywire.testing import free_port

ORDER = json.dumps({
    "id": "5O190127TN364715T", "status": "APPROVED", "intent": "CAPTURE",
    "payer": {"name": {"given_name": "John", "surname": "Doe"},
              "email_address": "customer@example.com", "payer_id": "QYR5Z8XDVJNXQ"},
    "purchase_units": [{
        "reference_id": "ord_0123456789abcdef", "custom_id": "ord_0123456789abcdef",
        "invoice_id": "ord_0123456789abcdef",
        "amount": {"currency_code": "USD", "value": "100.00",
                   "breakdown": {"item_total": {"currency_code": "USD", "value": "100.00"}}},
        "items": [{"name": "T-Shirt", "sku": "tshirt-black-m", "quantity": "1",
                   "unit_amount": {"currency_code": "USD", "value": "100.00"}}],
        "payee": {"email_address": "merchant@example.com", "merchant_id": "7KNGBPH2U58GQ"},
        "shipping": {"address": {"address_line_1": "123 Townsend St", "admin_area_2": "SF",
                                 "admin_area_1": "CA", "postal_code": "94107",
                                 "country_code": "US"}}}],
    "create_time": "2026-12-07T10:00:00Z", "update_time": "2026-12-07T10:00:05Z",
    "links": [{"href": f"https://api-m.sandbox.paypal.com/v2/checkout/orders/5O190127TN364715T{s}",
               "rel": r, "method": m} for s, r, m in
              (("", "self", "GET"), ("/capture", "capture", "POST"),
               ("", "update", "PATCH"))],
}).encode()
CREATE = json.dumps({
    "intent": "CAPTURE", "purchase_units": [{
        "reference_id": "ord_0123456789abcdef", "custom_id": "ord_0123456789abcdef",
        "invoice_id": "ord_0123456789abcdef",
        "amount": {"currency_code": "USD", "value": "100.00", "breakdown": {
            "item_total": {"currency_code": "USD", "value": "100.00"}}},
        "items": [{"name": "T-Shirt", "sku": "tshirt-black-m", "quantity": "1",
                   "unit_amount": {"currency_code": "USD", "value": "100.00"}}]}],
    "payment_source": {"paypal": {"experience_context": {
        "return_url": "https://shop.example.com/return",
        "cancel_url": "https://shop.example.com/cancel", "user_action": "PAY_NOW"}}},
}).encode()
# What paywire's PayPal transport sends (less the bearer token's length, about).
HEADERS = {"Accept": "application/json", "Authorization": "Bearer " + "A21AAk" * 16,
           "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
POST_HEADERS = {**HEADERS, "Content-Type": "application/json", "Prefer": "return=representation",
                "PayPal-Request-Id": "ord_0123456789abcdef-create"}


async def order_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """GET: the order JSON; POST: its body back."""
    if scope["type"] != "http":
        return
    body = await benchkit.read_body(receive)
    answer = ORDER if scope["method"] == "GET" else body
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(answer)).encode())]})
    await send({"type": "http.response.body", "body": answer})


def serve(port: int) -> None:
    """Child process: the order app under uvicorn (as benchkit's echo)."""
    benchkit.serve(order_app, port, lifespan="off")


Send = Callable[[str], Awaitable[int]]  # method -> body length (the body read to the end)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """The least an httpx transport on aiohttp can be (the body read whole, no timeouts)."""

    def __init__(self) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession(auto_decompress=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """One request through the session."""
        content = await request.aread()
        headers = [(k.decode(), v.decode()) for k, v in request.headers.raw]
        async with self._session.request(request.method, str(request.url), headers=headers,
                                         data=content or None) as resp:
            body = await resp.read()
            return httpx.Response(resp.status, headers=resp.raw_headers, content=body)

    async def aclose(self) -> None:
        """Close the session."""
        await self._session.close()


async def httpx_engine(client: httpx.AsyncClient, url: str) -> tuple[Send, Any]:
    """Requests through an httpx client."""

    async def send(method: str) -> int:
        if method == "GET":
            r = await client.get(url, headers=HEADERS)
        else:
            r = await client.post(url, content=CREATE, headers=POST_HEADERS)
        assert r.status_code == 200
        return len(r.content)

    return send, client.aclose


async def raw_aiohttp(url: str) -> tuple[Send, Any]:
    """Requests through `aiohttp.ClientSession` alone."""
    import aiohttp

    session = aiohttp.ClientSession(auto_decompress=False)

    async def send(method: str) -> int:
        if method == "GET":
            ctx = session.get(url, headers=HEADERS)
        else:
            ctx = session.post(url, data=CREATE, headers=POST_HEADERS)
        async with ctx as resp:
            assert resp.status == 200
            return len(await resp.read())

    return send, session.close


async def raw_h11(port: int) -> tuple[Send, Any]:
    """h11 on kept asyncio connections, one per concurrent caller, no httpx objects."""
    free: list[tuple[h11.Connection, asyncio.StreamReader, asyncio.StreamWriter]] = []
    opened: list[asyncio.StreamWriter] = []
    host = [("Host", f"127.0.0.1:{port}")]

    async def send(method: str) -> int:
        if free:
            conn, reader, writer = free.pop()
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            conn = h11.Connection(h11.CLIENT)
            opened.append(writer)
        if method == "GET":
            head = h11.Request(method="GET", target="/order", headers=host + list(HEADERS.items()))
            out = conn.send(head) + conn.send(h11.EndOfMessage())
        else:
            head = h11.Request(method="POST", target="/order", headers=[
                *host, *POST_HEADERS.items(), ("Content-Length", str(len(CREATE)))])
            out = conn.send(head) + conn.send(h11.Data(data=CREATE)) + conn.send(
                h11.EndOfMessage())
        writer.write(out)
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
            elif type(event) is h11.Data:
                body += event.data
            elif type(event) is h11.EndOfMessage:
                break
        conn.start_next_cycle()
        free.append((conn, reader, writer))
        return len(body)

    async def close() -> None:
        for writer in opened:
            writer.close()

    return send, close


async def engine(name: str, port: int) -> tuple[Send, Any]:
    """The named engine, ready to send."""
    url = f"http://127.0.0.1:{port}/order"
    if name == "httpx":
        return await httpx_engine(httpx.AsyncClient(timeout=30), url)
    if name == "lean":
        return await httpx_engine(httpx.AsyncClient(timeout=30, transport=LeanTransport()), url)
    if name == "aiohttp":
        return await httpx_engine(httpx.AsyncClient(timeout=30, transport=AiohttpTransport()),
                                  url)
    if name == "raw-aiohttp":
        return await raw_aiohttp(url)
    return await raw_h11(port)


async def worker(send: Send, method: str, left: Iterator[int]) -> None:
    """Send `method` requests until `left` (shared by the workers) runs out."""
    for _ in left:
        assert await send(method) > 0


async def measure(name: str, port: int, method: str, requests: int,
                  concurrency: int) -> float:
    """CPU ms per request of this process for `requests` of `method` through engine `name`."""
    send, close = await engine(name, port)
    try:
        for todo in (max(requests // 10, concurrency), requests):  # warm-up, then measured
            left = iter(range(todo))
            started = time.process_time()
            await asyncio.gather(*(worker(send, method, left) for _ in range(concurrency)))
            cpu = time.process_time() - started
    finally:
        await close()
    return 1000 * cpu / requests


def main() -> None:
    """Start the server, measure every engine, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--engines", nargs="+", default=None,
                        choices=["httpx", "lean", "aiohttp", "raw-h11", "raw-aiohttp"],
                        help="default: all (the aiohttp ones only if it is importable)")
    parser.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]))
        return
    engines = args.engines
    if engines is None:
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            engines = ["httpx", "lean", "raw-h11"]
        else:
            engines = ["httpx", "lean", "aiohttp", "raw-h11", "raw-aiohttp"]
    port = free_port()
    proc = benchkit.spawn(__file__, str(port))
    try:
        benchkit.wait_up(f"http://127.0.0.1:{port}/order", proc)
        print(f"client CPU per request, ms ({os.cpu_count()} cores, {args.requests} requests "
              f"per cell; load {os.getloadavg()[0]:.2f}); ratio to httpx in the same run")
        print(f"{'engine':<12}" + "".join(f"{m + ' c' + str(c):>20}" for m in ("GET", "POST")
                                          for c in args.concurrency))
        base: dict[tuple[str, int], float] = {}
        for name in engines:
            cells = []
            for method in ("GET", "POST"):
                for c in args.concurrency:
                    ms = asyncio.run(measure(name, port, method, args.requests, c))
                    if name == "httpx":
                        base[method, c] = ms
                    ratio = f" ({ms / base[method, c]:.2f}x)" if (method, c) in base else ""
                    cells.append(f"{ms:.3f}{ratio}")
            print(f"{name:<12}" + "".join(f"{cell:>20}" for cell in cells), flush=True)
        print(f"load after: {os.getloadavg()[0]:.2f}")
    finally:
        proc.terminate()
        proc.wait(timeout=15)


if __name__ == "__main__":
    main()
