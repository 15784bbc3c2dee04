"""The delivery port: where the outbox's announcements go."""

from __future__ import annotations

from typing import Protocol

from paywire.ports.outbox import OutboxMessage


class DeliveryTarget(Protocol):
    """Where announcements go (the shop's signed HTTP callback, a Python callable, SQS...).

    `deliver` raises `DeliveryError` (retryable or not) when the message was not accepted; a
    target must tolerate receiving one message id more than once (at-least-once delivery).

    A target may also say `hands_off = True`: it hands the message to a queue whose consumer
    delivers it to the shop (SQS in the serverless deployment), so an accepted message is
    `queued`, not `delivered` (read with `getattr(target, "hands_off", False)`; a plain target
    needs no such attribute).
    """

    name: str

    async def deliver(self, message: OutboxMessage) -> None:
        """Hand one message over."""
        ...
