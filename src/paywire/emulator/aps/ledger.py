"""What the emulated APS does with a transaction: pay, challenge, capture, void, refund, report.

Shared by the S2S API, the hosted pages and the control API. Every function takes the state
lock itself; none awaits. Answers are built unsigned (`answer`) and signed by the caller, so the
S2S answer, the direct feedback and the return to `return_url` carry the same parameters.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping

from paywire.emulator.aps import cards
from paywire.emulator.aps.signing import CARD_FIELDS, signed
from paywire.emulator.aps.state import ApsState, Operation, Token, Transaction, message_for

PAYMENT_COMMANDS = ("PURCHASE", "AUTHORIZATION")
MAINTENANCE_COMMANDS = ("CAPTURE", "VOID_AUTHORIZATION", "REFUND")
SUCCESS = {"PURCHASE": "14", "AUTHORIZATION": "02", "CAPTURE": "04", "REFUND": "06",
           "VOID_AUTHORIZATION": "08", "CHECK_STATUS": "12", "TOKENIZATION": "18"}
FAILURE = {"PURCHASE": "13", "AUTHORIZATION": "03", "CAPTURE": "05", "REFUND": "07",
           "VOID_AUTHORIZATION": "09", "CHECK_STATUS": "11", "TOKENIZATION": "17"}
_AMOUNT = re.compile(r"[1-9][0-9]{0,9}")
_REFERENCE = re.compile(r"[A-Za-z0-9_.\-]{1,40}")


class Refusal(Exception):
    """APS refuses the request with this five-digit code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def echo_of(params: Mapping[str, str]) -> dict[str, str]:
    """The request fields an answer echoes (no signature, no card fields)."""
    return {k: v for k, v in params.items() if k != "signature" and k not in CARD_FIELDS}


def require(params: Mapping[str, str], *names: str) -> None:
    """Refuse (00001) unless every name is present and non-empty."""
    if any(not params.get(n) for n in names):
        raise Refusal("00001")


def check_reference(value: str, status: str = "00") -> str:
    """Refuse (002) a reference APS would not take."""
    if _REFERENCE.fullmatch(value) is None:
        raise Refusal(status + "002")
    return value


def amount_of(state: ApsState, params: Mapping[str, str], status: str = "00") -> tuple[int, str]:
    """(minor units, currency) from the request, or a refusal (005 amount, 013 currency)."""
    require(params, "amount", "currency")
    if _AMOUNT.fullmatch(params["amount"]) is None:
        raise Refusal(status + "005")
    if params["currency"] not in state.config.currencies:
        raise Refusal(status + "013")
    return int(params["amount"]), params["currency"]


def sign_answer(state: ApsState, params: Mapping[str, str]) -> dict[str, str]:
    """`params` signed with the response phrase."""
    cred = state.config.credentials
    return signed(params, cred.response_phrase, cred.sha_type)


def send_feedback(state: ApsState, channel: str, params: Mapping[str, str]) -> None:
    """Sign and queue a feedback on `channel` (direct | notification)."""
    state.deliverer.send(channel, sign_answer(state, params))


# --- payments -------------------------------------------------------------------------------


def start_payment(state: ApsState, params: Mapping[str, str], token: Token,
                  channel: str) -> tuple[Transaction, str]:
    """Create the transaction and run the card's behaviour: (transaction, first answer code).

    A merchant reference used before is refused (00066), whatever became of its transaction.
    """
    command = params["command"]
    amount, currency = amount_of(state, params)
    reference = check_reference(params["merchant_reference"])
    card = cards.BY_NUMBER[token.card_number]
    now = state.clock.now()
    with state.lock:
        if reference in state.transactions:
            raise Refusal("00066")
        tx = Transaction(
            fort_id=state.new_fort_id(), merchant_reference=reference, command=command,
            amount=amount, currency=currency, channel=channel, echo=echo_of(params),
            status="", response_code="", created_at=now, updated_at=now,
            token_name=token.name, card_masked=cards.masked(token.card_number),
            card_brand=token.brand, expiry_date=token.expiry_date,
            return_url=params.get("return_url") or None)
        state.add(tx)
        behaviour = card.behaviour
        if behaviour == cards.SUCCESS:
            _settle(tx, True, now)
        elif behaviour == cards.CHALLENGE:
            tx.status, tx.response_code = "20", "20064"
            tx.challenge_key = secrets.token_urlsafe(16)
        elif behaviour == cards.DECLINE:
            _settle(tx, False, now, "666")
        elif behaviour == cards.INSUFFICIENT:
            _settle(tx, False, now, "029")
        elif behaviour == cards.UNCERTAIN:
            _settle(tx, True, now)  # it went through; the first answer cannot tell
            tx.answered_code = "15777"
        else:
            tx.status, tx.response_code = "19", "19000"
        if tx.answered_code is None:
            tx.answered_code = tx.response_code
        return tx, tx.answered_code


def _settle(tx: Transaction, ok: bool, now: float, message: str = "000") -> None:
    """Give a payment its final result."""
    status = (SUCCESS if ok else FAILURE)[tx.command]
    tx.status, tx.response_code = status, status + message
    tx.updated_at = now
    tx.challenge_key = None
    if ok:
        tx.authorized = tx.amount
        tx.captured = tx.amount if tx.command == "PURCHASE" else 0
        tx.authorization_code = f"{secrets.randbelow(10**6):06d}"


def complete_challenge(state: ApsState, tx: Transaction, approve: bool) -> None:
    """The buyer approved (or failed) the 3-D Secure challenge."""
    with state.lock:
        if tx.challenge_key is None:
            raise Refusal(FAILURE[tx.command] + "034")
        _settle(tx, approve, state.clock.now(), "000" if approve else "030")


def resolve_pending(state: ApsState, tx: Transaction, success: bool) -> None:
    """An offline decision on a pending (19) transaction."""
    with state.lock:
        if tx.status != "19":
            raise Refusal(FAILURE[tx.command] + "034")
        _settle(tx, success, state.clock.now(), "000" if success else "666")


def answer(state: ApsState, tx: Transaction, base_url: str, code: str | None = None,
           extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A payment's answer (S2S, feedback, return): the echo, the result, the card summary."""
    with state.lock:
        code = code or tx.response_code
        out = dict(tx.echo)
        out.update({"fort_id": tx.fort_id, "response_code": code,
                    "response_message": message_for(code), "status": code[:2],
                    "eci": "ECOMMERCE"})
        for key, value in (("payment_option", tx.card_brand), ("card_number", tx.card_masked),
                           ("expiry_date", tx.expiry_date), ("token_name", tx.token_name),
                           ("authorization_code", tx.authorization_code)):
            if value:
                out[key] = value
        if code == "20064" and tx.challenge_key:
            out["3ds_url"] = f"{base_url}/FortAPI/3ds/{tx.fort_id}?key={tx.challenge_key}"
        out.update(extra or {})
        return out


# --- maintenance ----------------------------------------------------------------------------


# The maintenance commands APS documents `maintenance_reference` for.
MAINTENANCE_REFERENCE_COMMANDS = frozenset({"REFUND"})


def maintain(state: ApsState, params: Mapping[str, str]) -> tuple[dict[str, str], bool]:
    """CAPTURE / VOID_AUTHORIZATION / REFUND: (unsigned answer, whether it changed anything)."""
    command = params["command"]
    out = echo_of(params)
    try:
        require(params, "merchant_reference")
        if "maintenance_reference" in params and command not in MAINTENANCE_REFERENCE_COMMANDS:
            # APS's documentation and its official PHP SDK carry it on REFUND only; elsewhere it
            # is an extra parameter, which APS refuses.
            raise Refusal("00027")
        maintenance_ref = params.get("maintenance_reference") or None
        if maintenance_ref is not None:
            check_reference(maintenance_ref)
        with state.lock:
            tx = state.find(params.get("merchant_reference"), params.get("fort_id"))
            if tx is None:
                raise Refusal("00036")
            out["fort_id"] = tx.fort_id
            amount = 0
            if command != "VOID_AUTHORIZATION":
                amount, currency = amount_of(state, params)
                if currency != tx.currency:
                    raise Refusal("00013")
            if maintenance_ref is not None and (
                    state.config.refuse_duplicate_maintenance_reference
                    and any(o.maintenance_reference == maintenance_ref
                            for o in tx.operations)):
                raise Refusal("00066")
            code = _apply(tx, command, amount)
            tx.operations.append(Operation(command, amount, code, state.clock.now(),
                                           maintenance_ref))
            changed = code.endswith("000")
            if changed:
                tx.status, tx.response_code = code[:2], code
                tx.updated_at = state.clock.now()
    except Refusal as refusal:
        code, changed = refusal.code, False
    out.update({"response_code": code, "response_message": message_for(code),
                "status": code[:2]})
    return out, changed


def _apply(tx: Transaction, command: str, amount: int) -> str:
    """The operation's code, applying it to the transaction when it succeeds."""
    fail = FAILURE[command]
    if tx.status in ("15", "19", "20", "10"):
        return fail + "662"
    if command == "CAPTURE":
        if tx.command != "AUTHORIZATION" or tx.voided or tx.authorized == 0:
            return fail + "034"
        if amount > tx.authorized - tx.captured:
            return fail + "042"
        tx.captured += amount
    elif command == "VOID_AUTHORIZATION":
        if tx.command != "AUTHORIZATION" or tx.voided or tx.captured or tx.authorized == 0:
            return fail + "034"
        tx.voided = True
    else:
        if tx.captured == 0:
            return fail + "034"
        if amount > tx.captured - tx.refunded:
            return fail + "048"
        tx.refunded += amount
    return SUCCESS[command] + "000"


def offline_refund(state: ApsState, tx: Transaction, amount: int) -> dict[str, str]:
    """A refund made in APS's back office: the notification it sends (unsigned)."""
    with state.lock:
        code = _apply(tx, "REFUND", amount)
        now = state.clock.now()
        tx.operations.append(Operation("REFUND", amount, code, now))
        if code.endswith("000"):
            tx.status, tx.response_code, tx.updated_at = code[:2], code, now
        keys = ("access_code", "merchant_identifier", "language")
        base: dict[str, str] = {k: tx.echo[k] for k in keys if k in tx.echo}
        base.update({"command": "REFUND", "merchant_reference": tx.merchant_reference,
                     "fort_id": tx.fort_id, "amount": str(amount), "currency": tx.currency,
                     "response_code": code, "response_message": message_for(code),
                     "status": code[:2]})
        return base


# --- CHECK_STATUS ---------------------------------------------------------------------------


def check_status(state: ApsState, params: Mapping[str, str]) -> dict[str, str]:
    """The CHECK_STATUS answer (unsigned): the transaction's code and totals."""
    out = echo_of(params)
    with state.lock:
        tx = state.find(params.get("merchant_reference"), params.get("fort_id"))
        if not params.get("merchant_reference") and not params.get("fort_id"):
            code = "00001"
        elif tx is None:
            code = "11036"
        else:
            code = "12000"
            out.update({
                "fort_id": tx.fort_id, "transaction_status": tx.status,
                "transaction_code": tx.response_code,
                "transaction_message": message_for(tx.response_code),
                "authorized_amount": str(tx.authorized), "captured_amount": str(tx.captured),
                "refunded_amount": str(tx.refunded)})
    out.update({"response_code": code, "response_message": message_for(code),
                "status": code[:2]})
    return out
