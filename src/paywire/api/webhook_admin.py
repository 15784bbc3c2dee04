"""The operators' view of the webhook machinery: deliveries refused for good, and the queued
"ask the provider" tasks (admin API key). Apart from `webhooks` (the deliveries themselves) so
that an app serving only the deliveries (the AWS webhook function) loads none of it.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from paywire.api.auth import AdminDep
from paywire.api.schemas import ErrorOut, dump
from paywire.api.webhooks import Container
from paywire.domain.errors import ValidationError
from paywire.ports import TruthTask, WebhookRejection

router = APIRouter()  # the operator's views of the webhook machinery


class RejectionOut(BaseModel):
    """A delivery refused for good, and why."""

    provider: str
    transmission_id: str
    received_at: datetime
    check: str
    reason: str
    likely_cause: str | None
    event_id: str | None
    event_type: str | None
    cert_url: str | None
    body_sha256: str | None

    @classmethod
    def of(cls, r: WebhookRejection) -> RejectionOut:
        """The wire form of a rejection."""
        return cls(**{name: getattr(r, name) for name in cls.model_fields})


class RejectionPage(BaseModel):
    """Rejections newest first; pass `next_cursor` as `cursor` for the next page."""

    data: list[RejectionOut]
    next_cursor: str | None


class TruthTaskOut(BaseModel):
    """A queued "ask the provider" task."""

    id: str
    provider: str
    kind: str
    resource_id: str
    reason: str
    status: str
    attempts: int
    order_id: str | None
    created_at: datetime
    next_attempt_at: datetime
    lease_owner: str | None
    lease_until: datetime | None
    last_error: str | None

    @classmethod
    def of(cls, t: TruthTask) -> TruthTaskOut:
        """The wire form of a task."""
        return cls(**{name: getattr(t, name) for name in cls.model_fields})


class TruthTaskList(BaseModel):
    """Truth-fetch tasks by due time."""

    data: list[TruthTaskOut]


def encode_cursor(at: datetime, key: str) -> str:
    """An opaque keyset cursor for (time, id)."""
    raw = json.dumps([at.isoformat(), key]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(time, id) from `encode_cursor`, or a 422 naming the parameter."""
    try:
        at, key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        when = datetime.fromisoformat(at)
        if not isinstance(key, str) or when.tzinfo is None:
            raise TypeError("not a cursor")
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValidationError("invalid cursor: pass a `next_cursor` back unchanged",
                              field="cursor") from exc
    return when, key


_ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 422, 503)}


@router.get("/v1/admin/webhook-rejections", response_model=RejectionPage,
            responses=_ADMIN_ERRORS, tags=["admin"])
async def list_webhook_rejections(
        _: AdminDep, c: Container, limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=512)] = None) -> JSONResponse:
    """Webhook deliveries refused for good, newest first: the check that failed, the reason
    and the likely cause (one row per transmission id; the log is bounded)."""
    before = decode_cursor(cursor) if cursor else None
    async with c.store.transaction() as uow:
        found = await uow.list_rejections(limit=limit + 1, before=before)
    page = found[:limit]
    next_cursor = (encode_cursor(page[-1].received_at, page[-1].transmission_id)
                   if len(found) > limit else None)
    return JSONResponse(dump(RejectionPage(data=[RejectionOut.of(r) for r in page],
                                           next_cursor=next_cursor)))


@router.get("/v1/admin/truth-tasks", response_model=TruthTaskList, responses=_ADMIN_ERRORS,
            tags=["admin"])
async def list_truth_tasks(
        _: AdminDep, c: Container,
        status: Literal["pending", "done", "failed"] | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50) -> JSONResponse:
    """Queued truth fetches (events paywire would not guess at), by due time."""
    async with c.store.transaction() as uow:
        tasks = await uow.list_truth_tasks(status=status, limit=limit)
    return JSONResponse(dump(TruthTaskList(data=[TruthTaskOut.of(t) for t in tasks])))
