"""Placeholder: replaced by the signed webhook deliverer this session."""

from __future__ import annotations

from typing import Any

from paywire.emulator.state import EmulatorState


class WebhookDeliverer:
    """Temporary no-op deliverer."""

    def __init__(self, emu: EmulatorState) -> None:
        self.emu = emu

    async def start(self) -> None:
        """Start background delivery."""

    async def stop(self) -> None:
        """Stop background delivery."""

    def enqueue(self, event: dict[str, Any], client_id: str) -> None:
        """Drop the event."""

    def reset(self) -> None:
        """Nothing to forget."""
