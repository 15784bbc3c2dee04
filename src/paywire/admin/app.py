"""The operator's dashboard at /admin: server-rendered pages (Jinja2, plain HTML forms, no
JavaScript) over `services.dashboard.Dashboard`.

    GET  /admin/login, POST /admin/login, POST /admin/logout
    GET  /admin                      the needs-attention queue and the health strip
    GET  /admin/orders               search: status, provider, flagged, dates, amount, an id
    GET  /admin/orders/{id}          one order's timeline, its actions and audit lines
    POST /admin/orders/{id}/reconcile | /refund | /resolve
    GET  /admin/rejections, /admin/truth, /admin/outbox, /admin/audit
    POST /admin/outbox/{id}/retry

Sign-in takes an API key or the configured password (`admin.auth`) and sets a session cookie:
HttpOnly, SameSite=Strict, Path=/admin, and Secure unless the page was asked for on a loopback
address. Every POST carries the session's CSRF token (the sign-in form a pre-session one);
failed sign-ins are throttled per client address. Each action and each sign-in is audited, and
so is each refused POST (a wrong CSRF token, no session) and each throttled sign-in.
Responses forbid caching and framing and allow no script at all (Content-Security-Policy).
An action answers with a redirect to the page it came from (post/redirect/get), carrying its
outcome in a signed one-time cookie.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from paywire.admin.auth import (
    Credentials,
    Session,
    Signer,
    Throttle,
    same_text,
    session_key,
)
from paywire.admin.health import HealthStrip, read_strip
from paywire.domain.catalog import Catalog
from paywire.domain.errors import ConfigError, NotFoundError, ValidationError
from paywire.domain.money import exponent
from paywire.domain.order import OrderStatus
from paywire.ports import OrderFilter
from paywire.services.dashboard import ActionResult, Dashboard, new_refund_id, redact
from paywire.services.health import HealthGauges
from paywire.settings import Settings

log = logging.getLogger("paywire.admin")

COOKIE = "paywire_admin"
PRE_COOKIE = "paywire_admin_pre"
FLASH_COOKIE = "paywire_admin_flash"
ANONYMOUS = "anonymous"  # the audit log's actor for what no session did
ANON_AUDIT_PER_CLIENT, ANON_AUDIT_TOTAL = 20, 300  # audit lines a minute without a session
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
PAGE = 50
OUTBOX_STATUSES = ("pending", "queued", "delivered", "dead")
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class AdminContainer(Protocol):
    """What the dashboard needs from the wired container."""

    dashboard: Dashboard
    catalog: Catalog
    health: HealthGauges | None


def _moment(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _json(value: Any) -> str:
    return json.dumps(redact(value), indent=1, sort_keys=True, default=str, ensure_ascii=False)


_env = Environment(loader=PackageLoader("paywire.admin", "templates"), autoescape=True,
                   undefined=StrictUndefined)
_env.filters.update(moment=_moment, age=_age, pretty=_json,
                    seconds=lambda s: timedelta(seconds=float(s)))


MAX_FIELDS = 20


async def read_form(request: Request) -> dict[str, str]:
    """A form post's fields (`application/x-www-form-urlencoded`, as every form here sends;
    anything else reads as no fields). The body's size is bounded by the app's body limit."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return {}
    try:
        pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True,
                          max_num_fields=MAX_FIELDS, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return {}
    return dict(pairs)


def _cursor(at: datetime, ident: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([at.isoformat(), ident]).encode()).decode()


def _parse_cursor(text: str | None) -> tuple[datetime, str] | None:
    if not text:
        return None
    try:
        at, ident = json.loads(base64.urlsafe_b64decode(text.encode()))
        moment = datetime.fromisoformat(at)
    except (ValueError, TypeError, binascii.Error):
        raise ValidationError("not a cursor this dashboard made", field="cursor") from None
    if moment.utcoffset() is None or not isinstance(ident, str):
        raise ValidationError("not a cursor this dashboard made", field="cursor")
    return moment, ident


def _day(text: str | None, field: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{field}: a date as YYYY-MM-DD", field=field) from None


def _minor(text: str | None, currency: str, field: str) -> int | None:
    if not text:
        return None
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValidationError(f"{field}: a decimal amount", field=field) from None
    if not value.is_finite() or value < 0:
        raise ValidationError(f"{field}: a decimal amount", field=field)
    return int(value.scaleb(exponent(currency)).to_integral_value())


@dataclass
class Filters:
    """The orders page's query string, read and checked."""

    status: str = ""
    provider: str = ""
    attention: bool = False
    date_from: str = ""
    date_to: str = ""
    min_amount: str = ""
    max_amount: str = ""
    currency: str = ""
    q: str = ""

    @classmethod
    def of(cls, params: Mapping[str, str], default_currency: str) -> Filters:
        """The filters a query string names (unknown keys ignored)."""
        return cls(status=params.get("status", ""), provider=params.get("provider", ""),
                   attention=params.get("attention", "") in ("1", "on", "true"),
                   date_from=params.get("from", ""), date_to=params.get("to", ""),
                   min_amount=params.get("min", ""), max_amount=params.get("max", ""),
                   currency=(params.get("currency", "") or default_currency).upper()[:3],
                   q=params.get("q", "")[:200])

    def where(self) -> OrderFilter:
        """The store's filter (ValidationError naming the field at fault)."""
        status = None
        if self.status:
            try:
                status = OrderStatus(self.status.upper())
            except ValueError:
                raise ValidationError(f"not a status: {self.status}", field="status") from None
        start, end = _day(self.date_from, "from"), _day(self.date_to, "to")
        amounts = bool(self.min_amount or self.max_amount)
        return OrderFilter(
            status=status, provider=self.provider or None, needs_attention=self.attention,
            created_from=None if start is None else datetime(start.year, start.month,
                                                             start.day, tzinfo=UTC),
            created_to=None if end is None else datetime(end.year, end.month, end.day,
                                                         tzinfo=UTC) + timedelta(days=1),
            min_minor=_minor(self.min_amount, self.currency, "min"),
            max_minor=_minor(self.max_amount, self.currency, "max"),
            currency=self.currency if amounts else None)

    def query(self, **more: str) -> str:
        """These filters as a query string (with `more`), empty fields left out."""
        pairs = {"status": self.status, "provider": self.provider,
                 "attention": "1" if self.attention else "", "from": self.date_from,
                 "to": self.date_to, "min": self.min_amount, "max": self.max_amount,
                 "currency": self.currency if (self.min_amount or self.max_amount) else "",
                 "q": self.q, **more}
        return urlencode({k: v for k, v in pairs.items() if v})


def create_admin(settings: Settings, container: Callable[[], AdminContainer]) -> Starlette:
    """The dashboard as an ASGI app to mount at /admin; `container()` is the running app's
    wired container (read per request: it exists only while the app runs)."""
    if settings.admin_password_hash is not None and settings.admin_session_secret is None:
        raise ConfigError("PAYWIRE_ADMIN_PASSWORD_HASH needs PAYWIRE_ADMIN_SESSION_SECRET "
                          "(the dashboard's sessions are signed with it)")
    signer = Signer(session_key(settings.admin_session_secret, settings.api_keys))
    credentials = Credentials(settings.api_keys, settings.admin_user,
                              settings.admin_password_hash)
    throttle = Throttle(settings.admin_login_attempts, settings.admin_login_window_seconds)
    # What no session did is audited too, but an unauthenticated client must not be able to
    # grow the audit log without bound: at most ANON_AUDIT_PER_CLIENT lines a minute per
    # address and ANON_AUDIT_TOTAL in all (this process); past that, a log line only.
    anon_per_client = Throttle(ANON_AUDIT_PER_CLIENT, 60.0)
    anon_total = Throttle(ANON_AUDIT_TOTAL, 60.0)

    async def record_unauthenticated(actor: str, action: str, who: str,
                                     **detail: Any) -> None:
        if anon_per_client.retry_after(who) or anon_total.retry_after("*"):
            log.warning("dashboard %s from %s not audited: too many unauthenticated lines "
                        "this minute", action, who)
            return
        anon_per_client.failed(who)
        anon_total.failed("*")
        await dashboard().record(actor, action, outcome="refused", **detail)
    lifetime = settings.admin_session_seconds

    def base(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    def secure(request: Request) -> bool:
        return (request.url.hostname or "") not in LOOPBACK

    def set_cookie(response: Response, request: Request, name: str, value: str,
                   max_age: int | None) -> None:
        response.set_cookie(name, value, max_age=max_age, path=base(request) or "/admin",
                            httponly=True, samesite="strict", secure=secure(request))

    def drop_cookie(response: Response, request: Request, name: str) -> None:
        response.delete_cookie(name, path=base(request) or "/admin", httponly=True,
                               samesite="strict", secure=secure(request))

    def page(request: Request, template: str, *, code: int = 200,
             session: Session | None = None, **context: Any) -> HTMLResponse:
        flash = signer.unsign("flash", request.cookies.get(FLASH_COOKIE))
        html = _env.get_template(template).render(
            base=base(request), session=session, flash=flash,
            now=container().dashboard.clock.now(),
            **context)
        response = HTMLResponse(html, status_code=code, headers=HEADERS)
        if flash is not None:
            drop_cookie(response, request, FLASH_COOKIE)
        return response

    def go(request: Request, path: str, result: ActionResult | None = None) -> Response:
        response = RedirectResponse(base(request) + path, status_code=303, headers=HEADERS)
        if result is not None:
            set_cookie(response, request, FLASH_COOKIE,
                       signer.sign("flash", {"ok": result.ok, "text": result.message}), 60)
        return response

    def client(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    Handler = Callable[[Request, Session], Awaitable[Response]]

    def signed_in(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Pages and actions for a signed-in operator; a POST must carry the CSRF token."""

        async def endpoint(request: Request) -> Response:
            session = signer.read_session(request.cookies.get(COOKIE))
            revoked = session is not None and not credentials.current(session.credential)
            if revoked:
                session = None  # its API key was removed or the password changed
            if session is None:
                if request.method == "GET":
                    wanted = request.url.path + (f"?{request.url.query}" if request.url.query
                                                 else "")
                    return go(request, "/login?" + urlencode({"next": wanted}))
                await record_unauthenticated(
                    ANONYMOUS, "session_refused", client(request), path=request.url.path,
                    client=client(request),
                    reason="credential revoked" if revoked else "no session, or it ended")
                return page(request, "denied.html", code=403,
                            reason="your session has ended: sign in again")
            if request.method == "POST":
                form = await read_form(request)
                request.state.form = form
                token = form.get("csrf")
                if not isinstance(token, str) or not same_text(token, session.csrf):
                    log.warning("dashboard POST refused: bad CSRF token",
                                extra={"actor": session.actor, "path": request.url.path})
                    await dashboard().record(session.actor, "csrf_refused", outcome="refused",
                                             path=request.url.path, client=client(request))
                    return page(request, "denied.html", code=403, session=session,
                                reason="the form's CSRF token is missing or wrong")
            try:
                return await handler(request, session)
            except NotFoundError as exc:
                return page(request, "denied.html", code=404, session=session,
                            reason=exc.message)
            except ValidationError as exc:
                return page(request, "denied.html", code=422, session=session,
                            reason=exc.message)

        return endpoint

    def dashboard() -> Dashboard:
        return container().dashboard

    async def health() -> HealthStrip:
        return await read_strip(container().health)

    def currency() -> str:
        products = list(container().catalog.products.values())
        return products[0].unit_price.currency if products else "USD"

    # --- sign-in -----------------------------------------------------------------------------

    async def login_page(request: Request) -> Response:
        csrf = secrets.token_urlsafe(24)
        response = page(request, "login.html", csrf=csrf,
                        next=_safe_next(request.query_params.get("next")),
                        configured=credentials.configured, error=None)
        set_cookie(response, request, PRE_COOKIE, signer.sign("pre", {"csrf": csrf}), 1800)
        return response

    async def login(request: Request) -> Response:
        form = await read_form(request)
        pre = signer.unsign("pre", request.cookies.get(PRE_COOKIE)) or {}
        token, secret = form.get("csrf"), form.get("secret")
        wanted = _safe_next(str(form.get("next") or ""))
        name = str(form.get("name") or "").strip()[:64]
        expected = pre.get("csrf")
        if not (isinstance(token, str) and isinstance(expected, str)
                and same_text(token, expected)):
            await record_unauthenticated(ANONYMOUS, "csrf_refused", client(request),
                                         path=request.url.path, client=client(request))
            return page(request, "denied.html", code=403,
                        reason="the sign-in form's CSRF token is missing or wrong: reload it")
        who = client(request)
        wait = throttle.retry_after(who)
        if wait:
            await record_unauthenticated(ANONYMOUS, "login_throttled", who, client=who,
                                         retry_after=wait)
            response = page(request, "login.html", code=429, csrf=expected, next=wanted,
                            configured=credentials.configured,
                            error=f"too many failed sign-ins: try again in {wait} s")
            response.headers["Retry-After"] = str(wait)
            return response
        identity = await credentials.identify(secret if isinstance(secret, str) else "")
        if identity is None:
            throttle.failed(who)
            await record_unauthenticated(f"unknown@{who}", "login", who)
            return page(request, "login.html", code=401, csrf=expected, next=wanted,
                        configured=credentials.configured,
                        error="that is neither an API key nor the password")
        throttle.succeeded(who)
        actor = f"{name} ({identity.actor})" if name else identity.actor
        value, _ = signer.session(actor, lifetime, credential=identity.credential)
        await dashboard().record(actor, "login", client=who)
        signed = go(request, wanted)
        set_cookie(signed, request, COOKIE, value, lifetime)
        drop_cookie(signed, request, PRE_COOKIE)
        return signed

    async def logout(request: Request, session: Session) -> Response:
        await dashboard().record(session.actor, "logout")
        response = go(request, "/login")
        drop_cookie(response, request, COOKIE)
        return response

    # --- pages -------------------------------------------------------------------------------

    async def home(request: Request, session: Session) -> Response:
        board = dashboard()
        flagged = await board.search(OrderFilter(needs_attention=True), limit=PAGE,
                                     before=_parse_cursor(request.query_params.get("cursor")))
        return page(request, "home.html", session=session, health=await health(),
                    orders=flagged.orders, board=board,
                    next=None if flagged.next_before is None else _cursor(*flagged.next_before))

    async def orders(request: Request, session: Session) -> Response:
        board = dashboard()
        filters = Filters.of(request.query_params, currency())
        found = await board.search(filters.where(), query=filters.q, limit=PAGE,
                                   before=_parse_cursor(request.query_params.get("cursor")))
        return page(request, "orders.html", session=session, filters=filters,
                    orders=found.orders, board=board, statuses=[s.value for s in OrderStatus],
                    providers=board.providers.names(),
                    next=None if found.next_before is None else filters.query(
                        cursor=_cursor(*found.next_before)))

    async def order(request: Request, session: Session) -> Response:
        timeline = await dashboard().timeline(request.path_params["order_id"])
        return page(request, "order.html", session=session, t=timeline, o=timeline.order,
                    refund_id=new_refund_id())

    async def act(request: Request, session: Session) -> Response:
        order_id, action = request.path_params["order_id"], request.path_params["action"]
        form: dict[str, str] = request.state.form
        board = dashboard()

        def field(name: str) -> str:
            return form.get(name, "")

        if action == "reconcile":
            done = await board.reconcile(session.actor, order_id)
        elif action == "refund":
            full = field("full") == "1"
            if not full and not field("amount").strip():  # never read as "all that is left"
                done = ActionResult(False, "give an amount, or use “refund all that is left”")
            elif full and field("amount").strip():  # which one was meant is not known
                done = ActionResult(False, "an amount was typed but “refund all that is left” "
                                    "was pressed: nothing was refunded; clear the amount, or "
                                    "use “refund this amount”")
            else:
                done = await board.refund(session.actor, order_id,
                                          None if full else field("amount"), field("reason"),
                                          refund_id=field("refund_id"))
        elif action == "resolve":
            done = await board.resolve(session.actor, order_id, field("note"))
        else:
            raise NotFoundError(f"no action {action!r}")
        return go(request, f"/orders/{order_id}", done)

    async def rejections(request: Request, session: Session) -> Response:
        before = _parse_cursor(request.query_params.get("cursor"))
        rows = await dashboard().rejections(limit=PAGE, before=before)
        return page(request, "rejections.html", session=session, rows=rows,
                    next=_cursor(rows[-1].received_at, rows[-1].transmission_id)
                    if len(rows) == PAGE else None)

    async def truth(request: Request, session: Session) -> Response:
        status = request.query_params.get("status") or None
        if status not in (None, "pending", "done", "failed"):
            raise ValidationError(f"not a task status: {status}", field="status")
        rows = await dashboard().truth_tasks(status=status, limit=200)
        return page(request, "truth.html", session=session, rows=rows, status=status or "")

    async def outbox(request: Request, session: Session) -> Response:
        status = request.query_params.get("status") or None
        if status is not None and status not in OUTBOX_STATUSES:
            raise ValidationError(f"not an outbox status: {status}", field="status")
        before = _parse_cursor(request.query_params.get("cursor"))
        rows = await dashboard().outbox(status=status, limit=PAGE, before=before)
        nxt = None
        if len(rows) == PAGE:
            nxt = urlencode({k: v for k, v in (("status", status or ""), ("cursor", _cursor(
                rows[-1].created_at, rows[-1].id))) if v})
        return page(request, "outbox.html", session=session, rows=rows, status=status or "",
                    statuses=OUTBOX_STATUSES, next=nxt, health=await health())

    async def retry(request: Request, session: Session) -> Response:
        done = await dashboard().retry_outbox(session.actor, request.path_params["message_id"])
        back = done.order_id
        return go(request, f"/orders/{back}" if back else "/outbox?status=dead", done)

    async def audit(request: Request, session: Session) -> Response:
        before = _parse_cursor(request.query_params.get("cursor"))
        rows = await dashboard().audit_log(limit=100, before=before)
        return page(request, "audit.html", session=session, rows=rows,
                    next=_cursor(rows[-1].at, rows[-1].id) if len(rows) == 100 else None)

    async def not_found(request: Request, exc: Exception) -> Response:
        return page(request, "denied.html", code=404, reason="no such page")

    routes = [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", signed_in(logout), methods=["POST"]),
        Route("/", signed_in(home), methods=["GET"]),
        Route("/orders", signed_in(orders), methods=["GET"]),
        Route("/orders/{order_id}", signed_in(order), methods=["GET"]),
        Route("/orders/{order_id}/{action}", signed_in(act), methods=["POST"]),
        Route("/rejections", signed_in(rejections), methods=["GET"]),
        Route("/truth", signed_in(truth), methods=["GET"]),
        Route("/outbox", signed_in(outbox), methods=["GET"]),
        Route("/outbox/{message_id}/retry", signed_in(retry), methods=["POST"]),
        Route("/audit", signed_in(audit), methods=["GET"]),
        Mount("/static", StaticFiles(packages=[("paywire.admin", "static")]), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found})


def _safe_next(value: str | None) -> str:
    """Where to go after signing in: a path inside the dashboard, never another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    # `next` is the full path the browser asked for; keep what follows the mount point.
    marker = "/admin"
    at = value.find(marker)
    rest = value[at + len(marker):] if at >= 0 else value
    if not rest.startswith("/") or rest.startswith("//"):
        return "/"
    return rest

