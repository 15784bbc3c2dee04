"""What every `paywire doctor` check returns: one verdict row."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Check:
    """One check's verdict: ok | warn | fail | skip, what was found and how to fix it."""

    name: str
    status: str
    detail: str
    fix: str = ""
