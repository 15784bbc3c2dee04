"""A Python callable as a delivery target, for shops that embed paywire in their own process.

`CallableTarget("myshop.fulfilment:on_paywire")` imports the function once and calls it as
`fn(message_id, type, payload)` (a coroutine function is awaited; a plain one runs in a worker
thread so it cannot block the loop). Returning normally means accepted; any exception means
"try again later". The function is given the message id because it may be called more than
once for the same message (at-least-once delivery) and must deduplicate on it.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from paywire.domain.errors import ConfigError, DeliveryError
from paywire.ports import OutboxMessage


def load_callable(spec: str) -> Callable[..., Any]:
    """Import `module:function` (dots allowed after the colon); ConfigError if it cannot."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"fulfilment callable {spec!r} must look like 'package.module:function'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"fulfilment callable {spec!r}: cannot import {module_name} "
                          f"({exc})") from exc
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise ConfigError(f"fulfilment callable {spec!r}: {module_name} has no "
                              f"{attr}") from exc
    if not callable(target):
        raise ConfigError(f"fulfilment callable {spec!r} is not callable")
    fn: Callable[..., Any] = target
    return fn


class CallableTarget:
    """Calls a Python function with each message."""

    def __init__(self, spec: str | Callable[..., Any], *, name: str = "callable") -> None:
        self.fn = load_callable(spec) if isinstance(spec, str) else spec
        self.spec = spec if isinstance(spec, str) else getattr(spec, "__qualname__", repr(spec))
        self.name = name

    def __repr__(self) -> str:
        return f"CallableTarget({self.spec!r})"

    async def deliver(self, message: OutboxMessage) -> None:
        """Call the function; DeliveryError (retryable) if it raised."""
        args = (message.id, message.type, dict(message.payload))
        try:
            if inspect.iscoroutinefunction(self.fn):
                await self.fn(*args)
            else:
                result = await asyncio.to_thread(self.fn, *args)
                if inspect.isawaitable(result):
                    await result
        except Exception as exc:
            raise DeliveryError(f"{self.spec} raised {type(exc).__name__}: {exc}",
                                target=self.name) from exc
