"""Fault injection rules: make chosen requests fail, stall or time out, and deliveries misbehave.

A rule matches HTTP requests (method + path regex) or webhook deliveries (event type regex +
URL regex) and fires with a probability, at most `count` times (None = unlimited), drawn from the
emulator's seeded random generator so a seed replays the same faults.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from random import Random
from typing import Any, Literal

HttpAction = Literal["error", "latency", "timeout"]
DeliveryAction = Literal["drop", "duplicate", "delay", "reorder"]
HTTP_ACTIONS = ("error", "latency", "timeout")
DELIVERY_ACTIONS = ("drop", "duplicate", "delay", "reorder")


class RuleError(ValueError):
    """A fault rule the control API cannot accept."""


@dataclass
class FaultRule:
    """One fault rule."""

    id: str
    target: Literal["http", "webhook"]
    action: str
    method: str = "*"
    path: str = ".*"
    event_type: str = ".*"
    url: str = ".*"
    # APS only: the S2S call's `command` / `query_command` (e.g. "^CAPTURE$").
    command: str = ".*"
    status: int = 500
    seconds: float = 0.0
    probability: float = 1.0
    count: int | None = None
    fired: int = 0
    body: dict[str, Any] | None = None
    _path_re: re.Pattern[str] = field(init=False, repr=False)
    _event_re: re.Pattern[str] = field(init=False, repr=False)
    _url_re: re.Pattern[str] = field(init=False, repr=False)
    _command_re: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            self._path_re = re.compile(self.path)
            self._event_re = re.compile(self.event_type)
            self._url_re = re.compile(self.url)
            self._command_re = re.compile(self.command)
        except re.error as exc:
            raise RuleError(f"invalid regular expression: {exc}") from exc

    @classmethod
    def from_json(cls, data: Any) -> FaultRule:
        """Validate a rule posted to the control API."""
        if not isinstance(data, dict):
            raise RuleError("a rule is a JSON object")
        action = data.get("action")
        target = data.get("target") or ("webhook" if action in DELIVERY_ACTIONS else "http")
        if target == "http" and action not in HTTP_ACTIONS:
            raise RuleError(f"http action must be one of {', '.join(HTTP_ACTIONS)}")
        if target == "webhook" and action not in DELIVERY_ACTIONS:
            raise RuleError(f"webhook action must be one of {', '.join(DELIVERY_ACTIONS)}")
        if target not in ("http", "webhook"):
            raise RuleError("target must be http or webhook")
        prob = data.get("probability", 1.0)
        count = data.get("count")
        status = data.get("status", 500)
        seconds = data.get("seconds", 30.0 if action == "timeout" else 0.0)
        if not isinstance(prob, int | float) or isinstance(prob, bool) or not 0 <= prob <= 1:
            raise RuleError("probability must be a number in [0, 1]")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool)
                                  or count < 0):
            raise RuleError("count must be a non-negative integer or null")
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise RuleError("status must be an HTTP status code")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise RuleError("seconds must be a non-negative number")
        strings = {k: data.get(k, d) for k, d in
                   (("method", "*"), ("path", ".*"), ("event_type", ".*"), ("url", ".*"),
                    ("command", ".*"))}
        for k, v in strings.items():
            if not isinstance(v, str) or len(v) > 500:
                raise RuleError(f"{k} must be a string")
        body = data.get("body")
        if body is not None and not isinstance(body, dict):
            raise RuleError("body must be a JSON object")
        return cls(
            id="FR-" + secrets.token_hex(6), target="webhook" if target == "webhook" else "http",
            action=str(action),
            method=strings["method"].upper(), path=strings["path"],
            event_type=strings["event_type"], url=strings["url"], command=strings["command"],
            status=status,
            seconds=float(seconds), probability=float(prob), count=count, body=body,
        )

    def to_json(self) -> dict[str, Any]:
        """The rule as the control API shows it."""
        return {
            "id": self.id, "target": self.target, "action": self.action, "method": self.method,
            "path": self.path, "event_type": self.event_type, "url": self.url,
            "command": self.command, "status": self.status, "seconds": self.seconds,
            "probability": self.probability,
            "count": self.count, "fired": self.fired, "body": self.body,
        }

    def _exhausted(self) -> bool:
        return self.count is not None and self.fired >= self.count

    def _draw(self, rng: Random) -> bool:
        if self._exhausted():
            return False
        if self.probability < 1.0 and rng.random() >= self.probability:
            return False
        self.fired += 1
        return True

    def matches_http(self, method: str, path: str, command: str = "") -> bool:
        """Whether this rule applies to the request (before drawing)."""
        return (self.target == "http" and self.method in ("*", method)
                and self._path_re.search(path) is not None
                and self._command_re.search(command) is not None)

    def matches_delivery(self, event_type: str, url: str) -> bool:
        """Whether this rule applies to a delivery attempt (before drawing)."""
        return (self.target == "webhook" and self._event_re.search(event_type) is not None
                and self._url_re.search(url) is not None)


class FaultInjector:
    """The active rules, consulted by the HTTP middleware and the webhook deliverer."""

    def __init__(self, rng: Random) -> None:
        self.rng = rng
        self.rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> FaultRule:
        """Activate a rule."""
        self.rules.append(rule)
        return rule

    def remove(self, rule_id: str) -> bool:
        """Deactivate a rule; False if there was none with that id."""
        before = len(self.rules)
        self.rules = [r for r in self.rules if r.id != rule_id]
        return len(self.rules) != before

    def clear(self) -> None:
        """Deactivate every rule."""
        self.rules = []

    def for_http(self, method: str, path: str, command: str = "") -> list[FaultRule]:
        """Rules that fire for this request, in the order they were added."""
        return [r for r in self.rules
                if r.matches_http(method, path, command) and r._draw(self.rng)]

    def for_delivery(self, event_type: str, url: str) -> list[FaultRule]:
        """Rules that fire for this delivery attempt, in the order they were added."""
        return [r for r in self.rules
                if r.matches_delivery(event_type, url) and r._draw(self.rng)]
