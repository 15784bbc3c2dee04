"""An order's history on SQL: append-only rows, read back in insertion order."""

from __future__ import annotations

import sqlalchemy as sa

from paywire.ports import HistoryEntry
from paywire.store.sql import rows
from paywire.store.sql.base import SqlBase
from paywire.store.sql.tables import history

_APPEND = sa.insert(history)


class SqlHistory(SqlBase):
    """Append to and read an order's history."""

    async def append_history(self, entry: HistoryEntry) -> None:
        """Append to the order's history."""
        await self._write(_APPEND, rows.history_values(entry))

    async def history(self, order_id: str) -> list[HistoryEntry]:
        """The order's history, oldest first (insertion order among equal times)."""
        result = await self._run(sa.select(history).where(history.c.order_id == order_id)
                                 .order_by(history.c.at, history.c.id))
        return [rows.history_from(row) for row in result.mappings()]
