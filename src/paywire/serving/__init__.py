"""How paywire's HTTP servers run under uvicorn: httptools's parser when it is installed, with a
16 KiB bound on a request's head; h11's otherwise.

uvicorn parses HTTP with h11 (pure Python) or httptools (llhttp, in C). httptools costs about 70
microseconds less CPU per request (bench/http_server.py; docs/benchmarks.md, the seventh round),
but uvicorn's httptools protocol sets no bound on a request's head: llhttp hands over the target
and the header fields in pieces and they are gathered for as long as the client keeps sending,
while uvicorn's h11 protocol refuses a head still unfinished past 16 KiB (h11's
`max_incomplete_event_size`).
`bounded.BoundedHttpToolsProtocol` bounds every head at 16 KiB on httptools, one that arrives
whole in a single read too (as Node's HTTP server does): 431, and the connection closed.

httptools comes with `pip install 'paywire[speed]'`, not with paywire itself: installed, it
would also become the parser of every other uvicorn server in the environment (uvicorn's
default picks it), unbounded, including a shop that embeds paywire (`paywire.embed`, Django).
`uvicorn_options()` is what paywire's own servers pass to uvicorn (`paywire serve`,
`paywire dev`, `paywire emulator`, the test servers, the benches' servers and baselines alike).
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

_log = logging.getLogger("paywire.serving")


def uvicorn_options() -> dict[str, Any]:
    """uvicorn's `http` setting for paywire's servers: the bounded httptools protocol when
    httptools is installed, else uvicorn's h11 protocol (which has its own bound). An httptools
    installed but broken (it or uvicorn's protocol for it fails to import) falls back to h11
    too, with a warning."""
    if importlib.util.find_spec("httptools") is None:
        return {"http": "h11"}
    try:
        from paywire.serving.bounded import BoundedHttpToolsProtocol
    except ImportError as exc:
        _log.warning("httptools is installed but cannot be used (%s); parsing HTTP with h11", exc)
        return {"http": "h11"}
    return {"http": BoundedHttpToolsProtocol}


__all__ = ["uvicorn_options"]
