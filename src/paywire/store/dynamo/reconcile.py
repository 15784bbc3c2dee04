"""Reconciliation bookkeeping on DynamoDB: candidates walk each status's (updated_at) index
partition; the per-order check state is an item in the order's partition, put or tombstoned
blind, as the SQL store's upsert and DELETE are."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from paywire.domain.order import Order, OrderStatus
from paywire.ports import (
    ReconcileState,
)
from paywire.store.dynamo import items as di
from paywire.store.dynamo.base import DynamoUnit
from paywire.store.dynamo.items import Item


class DynamoReconciliation(DynamoUnit):
    """Candidates for a check, and each order's check state."""

    async def reconcile_candidates(self, updated_before: Mapping[OrderStatus, datetime],
                                   now: datetime, limit: int
                                   ) -> list[tuple[Order, ReconcileState | None]]:
        """Orders in the given statuses last updated before that status's cut-off whose next
        check is due by `now` (or never checked), least recently updated first (ties by id),
        each with its state. Walks each status's (updated_at) index partition from the oldest,
        reading the orders and their states from the table."""
        self._require_limit(limit)
        if not updated_before:
            return []
        cutoffs = {str(s): di.ts(cutoff) for s, cutoff in updated_before.items()}
        moment = di.ts(now)
        states: dict[str, Item | None] = {}

        def accept(item: Item) -> bool:
            cutoff = cutoffs.get(item["status"]) if item["kind"] == "order" else None
            return cutoff is not None and item["updated_at"] < cutoff

        async def due(orders: list[Item]) -> list[Item]:
            found = await self._read_many(di.reconcile_key(o["id"]) for o in orders)
            kept = []
            for order in orders:
                state = found[di.reconcile_key(order["id"])]
                if state is None or state["next_check_at"] <= moment:
                    states[order["id"]] = state
                    kept.append(order)
            return kept

        found: dict[str, Item] = {}
        for status, cutoff in cutoffs.items():
            for item in await self._collect(
                    di.BY_DUE, f"RECON#{status}", bound=cutoff, ascending=True, limit=limit,
                    kinds=("order",), accept=accept, refine=due, min_page=25):
                found[item["id"]] = item
        chosen = sorted(found.values(), key=lambda i: (i["updated_at"], i["id"]))[:limit]
        return [(di.order_from(i), None if (s := states.get(i["id"])) is None
                 else di.reconcile_from(s)) for i in chosen]

    async def save_reconcile_state(self, state: ReconcileState) -> None:
        """Insert or replace the order's reconciliation state (an unconditional put)."""
        item = di.reconcile_item(state)
        self._write(di.reconcile_key(state.order_id), item, base=None, base_known=False,
                    cond=None, what=f"reconcile state of order {state.order_id}")

    async def clear_reconcile_state(self, order_id: str) -> None:
        """Forget the order's reconciliation state: a blind tombstone, as blind as the SQL
        store's DELETE (no read, no condition; where there was no state it is a tombstone
        that TTL deletes, reading as absent like the rest)."""
        self._write(di.reconcile_key(order_id), None, base=None, base_known=False, cond=None,
                    what=f"reconcile state of order {order_id}")
