"""APS behind `ports.PaymentProvider`: paywire's order flows in APS's model.

APS has no order object. Our order id is the root of every reference: attempt `n` of an order
pays under `merchant_reference = <order id>-<n>` (`amounts.merchant_reference`), and the
order's `provider_order_id` is our own order id. The flows:

- `create_order` makes no call: it checks the order can be paid at APS and answers no
  `approve_url`; `checkout_form(order)` is the signed hosted payment page form for the current
  attempt (PURCHASE for a CAPTURE order, AUTHORIZATION for an AUTHORIZE one). The buyer pays on
  APS's page (3-D Secure there too) and the result arrives on the feedback channels.
- With `flow="tokenization"` the form is APS's tokenization form instead: the buyer's card
  becomes a `token_name` on the return page, which pays with it (`capture_order` /
  `authorize_order` with `token`): a server PURCHASE/AUTHORIZATION under the attempt's
  reference. An answer `20064` (3-D Secure) is `awaiting_payer` with the `3ds_url` in its
  details (`redirect_url`): the buyer goes there, and the result arrives as feedback.
- `capture_order` / `authorize_order` without a token *confirm* the current attempt by
  CHECK_STATUS (the money moved on APS's page): paid → the capture/authorization (`fort_id`);
  declined → `ProviderError(kind="declined")` (the service then opens the next attempt); not
  paid yet or waiting on 3-D Secure → `awaiting_payer`; uncertain → `transient`; a code no rule
  covers → `unknown`.
- REFUND carries `maintenance_reference` derived from the operation key
  (`amounts.maintenance_reference`): a retry after a crash re-sends the same reference, APS
  answers "duplicate reference" and the client resolves it by CHECK_STATUS. APS (its
  documentation and official PHP SDK) takes `maintenance_reference` on REFUND only, and refuses
  an undocumented parameter (00027), so CAPTURE and VOID_AUTHORIZATION go without one and each
  asks CHECK_STATUS first: already captured (voided) → that answer, no second call; a capture
  (void) still in flight → `transient`; otherwise the call is sent. An uncertain answer is
  `transient` (the operation is resumed, checking first again), never a failure.
- `get_order` is CHECK_STATUS of the current attempt, as a `ProviderOrderState`
  (`attempt` set, so a DENIED ends only that attempt).

A refund's id (`refund_id`) is its fact key plus the merchant reference, the same string the
notification of that refund yields (`events.py`), so the API's answer and the feedback count it
once, and two equal partial refunds (two maintenance references) stay two.

This module holds the operations (which command, when, under which reference); what an answer
means (the refusal kinds above, an order's state, a refund's id and standing) is `answers.py`'s,
shared with the feedback.
"""

from __future__ import annotations

from paywire.domain.errors import ProviderError, ValidationError
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderStatus
from paywire.ports import (
    AuthorizationResult,
    CaptureResult,
    CheckoutForm,
    DisputeResult,
    ProviderOrder,
    ProviderOrderState,
    RefundResult,
)
from paywire.providers.aps import answers
from paywire.providers.aps.amounts import maintenance_reference
from paywire.providers.aps.answers import attempt_reference, error
from paywire.providers.aps.client import ApsClient
from paywire.providers.aps.mapping import AUTHORIZATION, CAPTURE, PROVIDER, PURCHASE, VOID, Outcome
from paywire.providers.aps.results import ApsResult, TransactionStatus

S = OrderStatus
FLOWS = ("hosted", "tokenization")


def _need(order: Order | None, what: str) -> Order:
    if order is None:
        raise error("invalid", f"APS {what} needs the order (its references derive from it)")
    return order


class ApsProvider:
    """`PaymentProvider` over an `ApsClient` (one merchant account).

    `return_url` is where APS sends the buyer back: paywire's own return page
    (`/v1/aps/return`), which shows the result and applies nothing.
    """

    name = PROVIDER

    def __init__(self, client: ApsClient, *, return_url: str, language: str | None = None,
                 order_description: str | None = None, flow: str = "hosted") -> None:
        if not return_url.startswith(("https://", "http://")):
            raise ValueError("the APS return URL must be an absolute http(s) URL")
        if flow not in FLOWS:
            raise ValueError(f"the APS checkout flow is one of {FLOWS}")
        self.flow = flow
        self.client = client
        self.return_url = return_url
        self.language = language
        self.order_description = order_description

    def __repr__(self) -> str:
        return f"ApsProvider({self.client!r})"

    def check_amount(self, amount: Money) -> None:
        """Refuse (ValidationError) a currency or amount APS cannot take."""
        self.client.check_amount(amount)

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self.client.aclose()

    # --- create: nothing to call; the buyer posts the form --------------------------------

    async def create_order(self, order: Order, *, request_id: str, return_url: str | None = None,
                           cancel_url: str | None = None) -> ProviderOrder:
        """No call: check the form can be built, and answer our order id as APS's."""
        try:
            self.checkout_form(order)
        except ValidationError as exc:
            raise error("invalid", f"APS cannot take this order: {exc.message}") from None
        return ProviderOrder(provider_order_id=order.id, status="CREATED", approve_url=None)

    def checkout_form(self, order: Order) -> CheckoutForm:
        """The signed hosted payment page form for the order's current attempt."""
        email = order.metadata.get("customer_email", "")
        if not email:
            raise ValidationError("APS needs the buyer's customer_email", field="customer_email")
        if self.flow == "tokenization":
            form = self.client.tokenization_page(merchant_reference=attempt_reference(order),
                                                 return_url=self.return_url,
                                                 language=self.language)
            return CheckoutForm(url=form.url, fields=dict(form.params))
        command = PURCHASE if order.intent is Intent.CAPTURE else AUTHORIZATION
        form = self.client.payment_page(
            command=command, merchant_reference=attempt_reference(order), amount=order.amount,
            customer_email=email, return_url=self.return_url, language=self.language,
            order_description=self.order_description or f"Order {order.id}")
        return CheckoutForm(url=form.url, fields=dict(form.params))

    # --- confirm a payment made on APS's page ------------------------------------------------

    async def capture_order(self, provider_order_id: str, *, request_id: str,
                            order: Order | None = None,
                            token: str | None = None) -> CaptureResult:
        """PURCHASE with `token`, or confirm the current attempt's (see the module doc)."""
        order = _need(order, "capture")
        if token is not None:
            result = await self._pay_with_token(order, token, PURCHASE)
            status = S.PENDING if result.outcome is Outcome.PENDING else S.COMPLETED
            return CaptureResult(capture_id=result.fort_id or "", status=status,
                                 amount=result.amount or order.amount,
                                 provider_status=result.response_code,
                                 provider_order_id=order.id)
        truth = await self._paid(order)
        state = answers.order_state(order, truth)
        if not state.captures:
            if state.status is S.PENDING:
                return CaptureResult(capture_id=truth.fort_id or "", status=S.PENDING,
                                     amount=order.amount,
                                     provider_status=truth.transaction_code or "")
            raise error("unknown", f"APS reports {truth.transaction_code} for a purchase, "
                        "with nothing captured", truth.transaction_code)
        return state.captures[0]

    async def authorize_order(self, provider_order_id: str, *, request_id: str,
                              order: Order | None = None,
                              token: str | None = None) -> AuthorizationResult:
        """AUTHORIZATION with `token`, or confirm the current attempt's (see the module doc)."""
        order = _need(order, "authorize")
        if token is not None:
            result = await self._pay_with_token(order, token, AUTHORIZATION)
            status = S.PENDING if result.outcome is Outcome.PENDING else S.AUTHORIZED
            return AuthorizationResult(authorization_id=result.fort_id or "", status=status,
                                       amount=result.amount or order.amount,
                                       provider_status=result.response_code)
        truth = await self._paid(order)
        state = answers.order_state(order, truth)
        if state.authorizations:
            return state.authorizations[0]
        if state.captures:  # captured since: the authorization is used up
            cap = state.captures[0]
            return AuthorizationResult(authorization_id=cap.capture_id, status=S.COMPLETED,
                                       amount=cap.amount, provider_status=cap.provider_status)
        if state.status is S.PENDING:
            return AuthorizationResult(authorization_id=truth.fort_id or "", status=S.PENDING,
                                       amount=order.amount,
                                       provider_status=truth.transaction_code or "")
        raise error("unknown", f"APS reports {truth.transaction_code} for an authorization, "
                    "with nothing authorized", truth.transaction_code)

    async def _pay_with_token(self, order: Order, token: str, command: str) -> ApsResult:
        """The server PURCHASE/AUTHORIZATION on a tokenized card, under the attempt's reference
        (a repeat is a duplicate reference, which the client resolves by CHECK_STATUS)."""
        email = order.metadata.get("customer_email", "")
        pay = self.client.purchase if command == PURCHASE else self.client.authorize
        result = await pay(merchant_reference=attempt_reference(order), amount=order.amount,
                           token_name=token, customer_email=email, return_url=self.return_url,
                           language=self.language)
        outcome, c = result.outcome, result.classification
        if outcome is Outcome.ON_HOLD and result.three_ds_url:
            raise ProviderError(f"{attempt_reference(order)} waits for the buyer's 3-D Secure "
                                "check", provider=PROVIDER, kind="awaiting_payer",
                                name=c.response_code,
                                details={"redirect_url": result.three_ds_url})
        if outcome is Outcome.DECLINED:
            raise error("declined", f"APS declined {attempt_reference(order)}: {c.reason}",
                        c.response_code)
        answers.settled(result)
        return result

    async def _paid(self, order: Order) -> TransactionStatus:
        reference = attempt_reference(order)
        truth = await self.client.check_status(reference, currency=order.amount.currency)
        return answers.paid(reference, truth)

    # --- maintenance ---------------------------------------------------------------------

    async def capture_authorization(self, authorization_id: str, amount: Money | None, *,
                                    request_id: str, final: bool = True,
                                    order: Order | None = None) -> CaptureResult:
        """CAPTURE (all of, or `amount` of) the authorization `authorization_id` (a fort id)."""
        order = _need(order, "capture")
        amount = amount or order.amount
        reference = attempt_reference(order)
        truth = await self._check_first(CAPTURE, reference, authorization_id, amount.currency)
        if truth.captured is not None and truth.captured.minor > 0:
            # An earlier attempt of this capture reached APS: answer it instead of resending.
            if truth.captured < amount:
                raise error("unknown", f"APS has {truth.captured} of {reference} captured, not "
                            f"the {amount} asked: not capturing again",
                            truth.transaction_code)
            return CaptureResult(capture_id=truth.fort_id or authorization_id,
                                 status=S.COMPLETED, amount=truth.captured,
                                 provider_status=truth.transaction_code or "",
                                 provider_order_id=order.id)
        result = await self.client.capture(merchant_reference=reference,
                                           fort_id=authorization_id, amount=amount)
        answers.settled(result)
        status = S.PENDING if result.outcome is Outcome.PENDING else S.COMPLETED
        return CaptureResult(capture_id=result.fort_id or authorization_id, status=status,
                             amount=amount, provider_status=result.response_code,
                             provider_order_id=order.id)

    async def void_authorization(self, authorization_id: str, *, request_id: str,
                                 order: Order | None = None) -> None:
        """VOID_AUTHORIZATION of `authorization_id` (a fort id)."""
        order = _need(order, "void")
        reference = attempt_reference(order)
        truth = await self._check_first(VOID, reference, authorization_id,
                                        order.amount.currency)
        if truth.order_status() is S.VOIDED:
            return  # an earlier attempt of this void reached APS
        result = await self.client.void_authorization(
            merchant_reference=reference, fort_id=authorization_id,
            currency=order.amount.currency)
        answers.settled(result)
        if result.outcome is Outcome.PENDING:
            raise error("transient", "APS has the void pending; asking again later",
                        result.response_code)

    async def refund_capture(self, capture_id: str, amount: Money | None, *, request_id: str,
                             invoice_id: str | None = None,
                             order: Order | None = None) -> RefundResult:
        """REFUND `amount` (None: all left) of the transaction `capture_id` (a fort id).

        APS is asked only for what paywire's records leave to refund (captured − refunded);
        refunds in flight are reserved by the service before it calls here.
        """
        order = _need(order, "refund")
        zero = Money.zero(order.amount.currency)
        left = (order.captured or order.amount) - (order.refunded or zero)
        amount = amount or left
        # Our refund id as the maintenance reference (stable across retries of this refund):
        # the notification of this refund then names the refund paywire reserved, which the
        # feedback adopts instead of counting a second refund if it arrives first.
        reference = maintenance_reference(invoice_id or request_id)
        result = await self.client.refund(
            merchant_reference=attempt_reference(order), fort_id=capture_id,
            maintenance_reference=reference, amount=amount, refundable=left)
        answers.settled(result)
        status = "pending" if result.outcome is Outcome.PENDING else "completed"
        result = answers.with_request(result, attempt_reference(order), amount, reference,
                                      capture_id)
        return RefundResult(refund_id=answers.refund_id_of(result), status=status, amount=amount,
                            provider_status=result.response_code, capture_id=capture_id)

    async def _check_first(self, command: str, reference: str, fort_id: str,
                           currency: str) -> TransactionStatus:
        """CHECK_STATUS before a CAPTURE / VOID_AUTHORIZATION, which carry no reference of their
        own: what an earlier attempt did is read from the transaction. One still in flight
        (its last operation is this command, pending or uncertain) is `transient`: never sent
        twice. A transaction APS does not know is left for the call itself to answer."""
        truth = await self.client.check_status(reference, currency=currency, fort_id=fort_id)
        return answers.not_in_flight(command, reference, truth)

    # --- truth -----------------------------------------------------------------------------

    async def get_order(self, provider_order_id: str, *,
                        order: Order | None = None) -> ProviderOrderState:
        """CHECK_STATUS of the order's current attempt. APS knows an attempt only once the
        buyer submitted the payment page: "not found" for an unpaid order is `awaiting_payer`
        (normal until the checkout window passes), never the configuration fault a missing
        PayPal order would be."""
        order = _need(order, "get_order")
        reference = attempt_reference(order)
        truth = await self.client.check_status(reference, currency=order.amount.currency)
        t = truth.transaction
        if not truth.found and truth.query.kind == "not_found" and order.status in (
                S.CREATED, S.APPROVED):
            raise error("awaiting_payer", f"the buyer has not paid {reference} on APS's page "
                        "yet", truth.query.response_code)
        if not truth.found or t is None:
            raise truth.query.error(f"APS CHECK_STATUS {reference}: "
                                    f"{truth.query.response_code} {truth.query.reason}")
        if t.needs_attention or t.outcome in (Outcome.ERROR, Outcome.DUPLICATE_REFERENCE):
            raise error("unknown", f"APS reports {t.response_code} for {reference}: {t.reason}",
                        t.response_code)
        return answers.order_state(order, truth)

    async def get_capture(self, capture_id: str) -> CaptureResult:
        """APS has no capture object apart from its transaction: ask about the order."""
        raise error("invalid", "APS answers about transactions, not captures: fetch the order")

    async def get_dispute(self, dispute_id: str) -> DisputeResult:
        """APS has no dispute API (chargebacks reach the merchant outside it)."""
        raise error("invalid", "APS reports no disputes through its API")

    async def get_refund(self, refund_id: str) -> RefundResult:
        """A refund's standing from CHECK_STATUS of its transaction (`answers.refund_status`:
        APS reports totals and the last operation, not each refund)."""
        ref = answers.parse_refund_id(refund_id)
        truth = await self.client.check_status(ref.merchant_reference, currency=ref.currency,
                                               fort_id=ref.fort_id)
        amount = ref.amount
        status = answers.refund_status(truth, amount)
        # No capture id: APS has no capture object to look the order up by (the truth fetch
        # goes through the order the refund's event was tied to).
        return RefundResult(refund_id=refund_id, status=status, amount=amount,
                            provider_status=truth.transaction_code or "")
