"""A webhook subscription: the record the state keeps and the deliverer reads.

Its own module so the deliverer needs nothing else of the state's (`delivery.DeliveryHost`):
the state makes its deliverer, and an import back would be a loop.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Webhook:
    """A webhook subscription of one app."""

    id: str
    client_id: str
    url: str
    event_types: list[str]  # ["*"] = all
