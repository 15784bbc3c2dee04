"""APS response codes -> what they mean for paywire, per command. Pure: no I/O.

`classify(command, response_code)` is total: every code a command can answer maps to an
`Outcome`, and anything else (an unpublished status or message, a status that belongs to another
command, a success status with a failure message) is `Outcome.UNKNOWN`, which the caller sends to
needs-attention. Nothing is guessed:

- the command's success status with message `000` -> SUCCESS;
- 15 (uncertain), and messages 777/784 (processed but unconfirmed, still processing) on any
  refusal -> UNCERTAIN: resolved by CHECK_STATUS, never read as a decline;
- 19, 10 (incomplete), 01 (order stored), 40 (in review) -> PENDING (CHECK_STATUS resolves);
- 20 (on hold; `20064` = 3-D Secure check requested, with a `3ds_url`) -> ON_HOLD;
- messages 066 (merchant reference already exists) and 007 (duplicate order number) ->
  DUPLICATE_REFERENCE: an earlier attempt under the same reference reached APS, so the caller
  asks CHECK_STATUS for its truth; it is never a decline;
- 00 (invalid request): nothing was processed -> ERROR with a `ProviderError` kind (a card
  problem on PURCHASE/AUTHORIZATION is a DECLINED: the buyer may try another card);
- the command's failure status -> DECLINED (configuration messages stay ERROR; a failed
  CHECK_STATUS is an ERROR: `11036` = APS does not know the reference, kind `not_found`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from paywire.domain.errors import ProviderError
from paywire.providers.aps.codes import ResponseCode

PROVIDER = "aps"


class Outcome(StrEnum):
    """What an APS answer means, in paywire's terms."""

    SUCCESS = "success"
    DECLINED = "declined"  # a definite failure: nothing was charged / changed
    PENDING = "pending"  # not final yet: CHECK_STATUS (or a notification) resolves it
    UNCERTAIN = "uncertain"  # may or may not have happened: CHECK_STATUS resolves it
    ON_HOLD = "on_hold"  # waits for the buyer (3-D Secure): the feedback channels finish it
    DUPLICATE_REFERENCE = "duplicate_reference"  # ask CHECK_STATUS; never a decline
    ERROR = "error"  # refused before processing (invalid request, configuration)
    UNKNOWN = "unknown"  # not a code this command can answer: needs attention


PURCHASE, AUTHORIZATION = "PURCHASE", "AUTHORIZATION"
CAPTURE, VOID, REFUND = "CAPTURE", "VOID_AUTHORIZATION", "REFUND"
CHECK_STATUS, TOKENIZATION = "CHECK_STATUS", "TOKENIZATION"
PAYMENT_COMMANDS = frozenset({PURCHASE, AUTHORIZATION})
MAINTENANCE_COMMANDS = frozenset({CAPTURE, VOID, REFUND})
TRANSACTION_COMMANDS = PAYMENT_COMMANDS | MAINTENANCE_COMMANDS

# command -> (success status, failure status)
COMMAND_STATUSES: dict[str, tuple[str, str]] = {
    PURCHASE: ("14", "13"), AUTHORIZATION: ("02", "03"), CAPTURE: ("04", "05"),
    REFUND: ("06", "07"), VOID: ("08", "09"), CHECK_STATUS: ("12", "11"),
    TOKENIZATION: ("18", "17"),
}
_PAYMENT_OPEN = {"15": Outcome.UNCERTAIN, "19": Outcome.PENDING, "20": Outcome.ON_HOLD,
                 "10": Outcome.PENDING, "01": Outcome.PENDING, "40": Outcome.PENDING}
_MAINTENANCE_OPEN = {"15": Outcome.UNCERTAIN, "19": Outcome.PENDING}
# command -> statuses that are not final yet, and what each means
OPEN_STATUSES: dict[str, dict[str, Outcome]] = {
    PURCHASE: _PAYMENT_OPEN, AUTHORIZATION: _PAYMENT_OPEN, CAPTURE: _MAINTENANCE_OPEN,
    REFUND: _MAINTENANCE_OPEN, VOID: _MAINTENANCE_OPEN, CHECK_STATUS: {}, TOKENIZATION: {},
}


def _codes(*groups: str) -> frozenset[str]:
    return frozenset(c for g in groups for c in g.split())


DUPLICATE_MESSAGES = _codes("066 007")
UNCERTAIN_MESSAGES = _codes("777 784")
# message -> ProviderError kind for refusals that are not the buyer's doing.
ERROR_KINDS: dict[str, str] = {
    **dict.fromkeys(_codes("008 009 010 015"), "auth"),
    **dict.fromkeys(_codes("006 051 054 071 119"), "transient"),
    **dict.fromkeys(_codes("036 076 127 151"), "not_found"),
    **dict.fromkeys(_codes("047 117 125"), "already_done"),
    "048": "over_refund",
    **dict.fromkeys(_codes(
        "001 002 003 004 005 011 013 014 017 018 019 020 021 023 024 025 026 027 032 033 037 "
        "038 039 040 042 043 046 049 067 068 069 070 073 077 080 082 093 097 098 099 110 111 "
        "112 113 116 662 779 780 781 783"), "invalid"),
}
# Messages that refuse the buyer's card or choice: a decline even on status 00.
BUYER_MESSAGES = _codes(
    "012 016 029 030 031 034 044 050 052 055 056 057 058 060 065 072 074 075 078 079 083 084 "
    "087 088 089 090 092 094 095 096 100 102 104 118 121 123 666 773 778 785 787")
# Failure statuses' decline kinds (the default for a failure status is "declined").
_DECLINE_KINDS = {"042": "invalid"}
_KEPT_KINDS = ("not_found", "already_done", "over_refund")

# The command whose status a CHECK_STATUS `transaction_status` is (open statuses: payments).
STATUS_COMMAND: dict[str, str] = {
    **{s: c for c, pair in COMMAND_STATUSES.items() for s in pair
       if c in TRANSACTION_COMMANDS},
    **dict.fromkeys(("00", *_PAYMENT_OPEN), PURCHASE),
}


@dataclass(frozen=True, slots=True)
class Classification:
    """One answer's meaning: the outcome, why, and the error kind for refusals."""

    command: str
    response_code: str
    outcome: Outcome
    reason: str
    kind: str | None = None  # ProviderError kind for DECLINED / ERROR / UNKNOWN
    retryable: bool = False

    @property
    def needs_attention(self) -> bool:
        """Whether no rule covers this answer (a person must look)."""
        return self.outcome is Outcome.UNKNOWN

    def error(self, message: str | None = None) -> ProviderError:
        """This refusal as a typed `ProviderError` (`name` = the response code)."""
        return ProviderError(message or f"APS {self.command} answered {self.response_code}: "
                             f"{self.reason}", provider=PROVIDER, kind=self.kind or "unknown",
                             name=self.response_code, issue=self.outcome.value,
                             retryable=self.retryable)


def _unknown(command: str, code: str, why: str) -> Classification:
    return Classification(command, code, Outcome.UNKNOWN, why, kind="unknown")


def classify(command: str, response_code: object) -> Classification:
    """What `response_code` means as the answer to `command` (total; see the module doc)."""
    raw = response_code if isinstance(response_code, str) else repr(response_code)
    rc = ResponseCode.parse(response_code)
    if rc is None:
        return _unknown(command, raw, f"malformed response_code {raw[:20]!r}")
    if command not in COMMAND_STATUSES:
        return _unknown(command, rc.code, f"command {command[:40]!r} is not one paywire sends")
    if not rc.published:
        return _unknown(command, rc.code, f"unpublished response code {rc.code}")
    success, failure = COMMAND_STATUSES[command]
    reason = rc.text
    if rc.status == success:
        if rc.message == "000":
            return Classification(command, rc.code, Outcome.SUCCESS, reason)
        return _unknown(command, rc.code, f"success status with message {rc.message}: "
                        f"{reason}")
    opened = OPEN_STATUSES[command].get(rc.status)
    if opened is not None:
        return Classification(command, rc.code, opened, reason)
    if rc.status not in ("00", failure):
        return _unknown(command, rc.code, f"{command} cannot answer status {rc.status}: "
                        f"{reason}")
    if rc.message == "000":
        return _unknown(command, rc.code, f"refusal with a success message: {reason}")
    return _refusal(command, rc, failure, reason)


def _refusal(command: str, rc: ResponseCode, failure: str, reason: str) -> Classification:
    """Status 00 or the command's failure status, with a published non-success message."""
    code, msg = rc.code, rc.message
    if msg in DUPLICATE_MESSAGES and command in TRANSACTION_COMMANDS:
        return Classification(command, code, Outcome.DUPLICATE_REFERENCE, reason)
    if msg in UNCERTAIN_MESSAGES and command in TRANSACTION_COMMANDS:
        return Classification(command, code, Outcome.UNCERTAIN, reason)
    kind = ERROR_KINDS.get(msg)
    if rc.status == failure and command == CHECK_STATUS:  # the query failed, not a payment
        return Classification(command, code, Outcome.ERROR, reason, kind=kind or "invalid",
                              retryable=kind == "transient")
    if rc.status == failure:
        if kind in ("auth", "invalid") and msg not in _DECLINE_KINDS:
            return Classification(command, code, Outcome.ERROR, reason, kind=kind)
        kind = kind if kind in _KEPT_KINDS else _DECLINE_KINDS.get(msg, "declined")
        return Classification(command, code, Outcome.DECLINED, reason, kind=kind)
    # Status 00: refused before processing.
    if msg in BUYER_MESSAGES and command in PAYMENT_COMMANDS:
        return Classification(command, code, Outcome.DECLINED, reason, kind="declined")
    kind = kind or "invalid"
    return Classification(command, code, Outcome.ERROR, reason, kind=kind,
                          retryable=kind == "transient" and command == CHECK_STATUS)


def classify_transaction(transaction_code: object) -> Classification:
    """A CHECK_STATUS `transaction_code`, read as the answer of the command its status owns."""
    rc = ResponseCode.parse(transaction_code)
    if rc is None:
        raw = transaction_code if isinstance(transaction_code, str) else repr(transaction_code)
        return _unknown("CHECK_STATUS", raw, f"malformed transaction_code {raw[:20]!r}")
    command = STATUS_COMMAND.get(rc.status)
    if command is None:
        return _unknown("CHECK_STATUS", rc.code, f"transaction status {rc.status} is not one "
                        "of a transaction paywire makes")
    return classify(command, rc.code)
