"""Who is told about the statements paywire hands a driver itself (`observing`): those
SQLAlchemy's engines do not run, so its `before_cursor_execute` event never sees them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

Observer = Callable[[str, Any, bool], None]
_observers: list[Observer] = []


@contextmanager
def observing(observer: Observer) -> Iterator[None]:
    """Call `observer(sql, parameters, several)` for every statement this process hands a
    driver itself meanwhile (PostgreSQL's through `pgrun`, SQLite's hot writes and reads
    through `_write` and `_select`; once per parameter set, `several` for a several-row one),
    as SQLAlchemy's `before_cursor_execute` event does for what its engines run: what the
    growth bench explains, and what tests count."""
    _observers.append(observer)
    try:
        yield
    finally:
        _observers.remove(observer)


def announce(sql: str, parameter_sets: Sequence[Any], several: bool) -> None:
    """Tell the observers (`observing`) about a statement about to be sent."""
    for observer in _observers:
        for parameters in parameter_sets:
            observer(sql, parameters, several)
