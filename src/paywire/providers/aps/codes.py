"""APS's published response code tables: 2-digit statuses and 3-digit message codes.

A `response_code` is five digits: the status, then the message (`14000` = purchase success,
`20064` = on hold: 3-D Secure check requested). The tables hold every value APS's integration
guide publishes ("Transaction Response Codes"); `mapping` decides what each means for paywire.
A code outside these tables is unknown, and unknown codes go to needs-attention, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STATUSES: dict[str, str] = {
    "00": "Invalid request", "01": "Order stored", "02": "Authorization success",
    "03": "Authorization failed", "04": "Capture success", "05": "Capture failed",
    "06": "Refund success", "07": "Refund failed", "08": "Authorization voided",
    "09": "Authorization void failed", "10": "Incomplete", "11": "Check status failed",
    "12": "Check status success", "13": "Purchase failure", "14": "Purchase success",
    "15": "Uncertain transaction", "17": "Tokenization failed", "18": "Tokenization success",
    "19": "Transaction pending", "20": "On hold", "21": "SDK token creation failure",
    "22": "SDK token creation success", "23": "Digital wallet service failed",
    "24": "Digital wallet order processed", "27": "Check card balance failed",
    "28": "Check card balance success", "29": "Redemption failed", "30": "Redemption success",
    "31": "Reverse redemption failed", "32": "Reverse redemption success",
    "40": "Transaction in review", "42": "Currency conversion success",
    "43": "Currency conversion failed", "44": "3-D Secure success", "45": "3-D Secure failed",
    "46": "Bill creation success", "47": "Bill creation failed",
    "48": "Invoice payment link success", "49": "Invoice payment link failed",
    "50": "Batch file uploaded", "51": "Batch file upload failed", "52": "Token created",
    "53": "Token creation failed", "54": "Get tokens success", "55": "Get tokens failed",
    "56": "Reporting request success", "57": "Reporting request failed", "58": "Token updated",
    "59": "Token update failed", "62": "Get installment plans success",
    "63": "Get installment plans failed", "66": "Delete token success",
    "70": "Get batch results success", "71": "Get batch results failed",
    "72": "Batch processing success", "73": "Batch processing failed",
    "74": "Bank transfer success", "75": "Bank transfer failed",
    "76": "Batch validation success", "77": "Batch validation failed",
    "80": "Card verified", "81": "Card verification failed",
}

MESSAGES: dict[str, str] = {
    "000": "Success", "001": "Missing parameter", "002": "Invalid parameter format",
    "003": "Payment option not available for this merchant account", "004": "Invalid command",
    "005": "Invalid amount", "006": "Technical problem", "007": "Duplicate order number",
    "008": "Signature mismatch", "009": "Invalid merchant identifier",
    "010": "Invalid access code", "011": "Order not saved", "012": "Card expired",
    "013": "Invalid currency", "014": "Inactive payment option",
    "015": "Inactive merchant account", "016": "Invalid card number",
    "017": "Operation not allowed by the acquirer", "018": "Operation not allowed by processor",
    "019": "Inactive acquirer", "020": "Processor is inactive",
    "021": "Payment option deactivated by acquirer", "023": "Currency not accepted by acquirer",
    "024": "Currency not accepted by processor",
    "025": "Processor integration settings missing",
    "026": "Acquirer integration settings missing", "027": "Invalid extra parameters",
    "029": "Insufficient funds", "030": "Authentication failed", "031": "Invalid issuer",
    "032": "Invalid parameter length", "033": "Parameter value not allowed",
    "034": "Operation not allowed", "035": "Order created successfully",
    "036": "Order not found", "037": "Missing return URL", "038": "Token service inactive",
    "039": "No active payment option found", "040": "Invalid transaction source",
    "042": "Operation amount exceeds the authorized amount", "043": "Inactive operation",
    "044": "Token name does not exist",
    "046": "Channel not configured for the selected payment option",
    "047": "Order already processed", "048": "Operation amount exceeds captured amount",
    "049": "Operation not valid for this payment option",
    "050": "Merchant per-transaction limit exceeded", "051": "Technical error",
    "052": "Consumer is not in OLP database", "053": "Merchant is not found in OLP engine",
    "054": "Transaction cannot be processed at this moment", "055": "OLP id alias not valid",
    "056": "OLP id alias does not exist",
    "057": "Transaction amount exceeds the daily transaction limit",
    "058": "Transaction amount exceeds the per-transaction limit",
    "059": "Merchant name and SADAD merchant id do not match",
    "060": "Incorrect OLP password", "062": "Token has been created",
    "063": "Token has been updated", "064": "3-D Secure check requested",
    "065": "Transaction waiting for customer's action",
    "066": "Merchant reference already exists",
    "067": "Dynamic descriptor not configured for selected payment option",
    "068": "SDK service is inactive", "069": "Mapping not found for the given error code",
    "070": "device_id mismatch", "071": "Failed to initiate connection",
    "072": "Transaction cancelled by the consumer", "073": "Invalid request format",
    "074": "Transaction failed", "075": "Transaction failed",
    "076": "Transaction not found in OLP", "077": "Error transaction code not found",
    "078": "Failed to check fraud screen", "079": "Transaction challenged by fraud rules",
    "080": "Invalid payment option", "082": "Inactive fraud service",
    "083": "Unexpected user behavior",
    "084": "Amount outside the limits of the selected plan",
    "086": "Installment plan not configured for merchant account",
    "087": "Card BIN does not match accepted issuer bank",
    "088": "Token name was not created for this transaction",
    "089": "Failed to retrieve digital wallet details", "090": "Transaction in review",
    "092": "Invalid issuer code", "093": "Service inactive", "094": "Invalid plan code",
    "095": "Inactive issuer", "096": "Inactive plan", "097": "Operation not allowed for service",
    "098": "Invalid or expired call_id", "099": "Failed to execute service",
    "100": "Invalid expiry date", "101": "Bill number not found",
    "102": "Apple Pay order has expired", "103": "Duplicate subscription id",
    "104": "No plans valid for request", "105": "Invalid bank code", "106": "Inactive bank",
    "107": "Invalid transfer_date", "110": "Contradicting parameters",
    "111": "Service not applicable for payment option",
    "112": "Service not applicable for payment operation",
    "113": "Service not applicable for e-commerce indicator", "114": "Token already exists",
    "115": "Expired invoice payment link", "116": "Inactive notification type",
    "117": "Invoice payment link already processed", "118": "Order bounced",
    "119": "Request dropped", "120": "Payment link terms and conditions not found",
    "121": "Card number is not verified", "122": "Invalid date interval",
    "123": "Maximum number of attempts exceeded", "124": "Account successfully created",
    "125": "Invoice already paid", "126": "Duplicate invoice id",
    "127": "Merchant reference is not generated yet", "128": "Generated report still pending",
    "129": "Downloaded report queue is full", "134": "Search results exceed the maximum",
    "136": "Batch file validation failed", "137": "Invalid batch file execution date",
    "138": "Batch file still under validation", "140": "Batch file still under processing",
    "141": "Batch reference does not exist", "142": "Batch file header is invalid",
    "144": "Invalid batch file", "146": "Batch reference already exists",
    "147": "Batch process request received", "148": "Batch file will be processed",
    "149": "Payment link request id not found", "150": "Payment link is already open",
    "151": "3ds_id does not exist", "152": "3-D Secure verification does not match the request",
    "154": "Maximum number of upload retries reached", "155": "Upload retries not configured",
    "662": "Operation not allowed: the order is not confirmed yet",
    "666": "Transaction declined", "773": "Transaction closed",
    "777": "Processed, but failed to receive confirmation", "778": "Session timed out",
    "779": "Transformation error", "780": "Transaction number transformation error",
    "781": "Message or response code transformation error",
    "783": "Installments service inactive",
    "784": "Transaction still processing: another transaction cannot be made",
    "785": "Transaction blocked by fraud check", "787": "Failed to authenticate the user",
    "788": "Invalid bill number", "789": "Expired bill number", "790": "Invalid bill type code",
}

_CODE = re.compile(r"[0-9]{5}")


@dataclass(frozen=True, slots=True)
class ResponseCode:
    """A parsed `response_code`: its status and message parts."""

    status: str
    message: str

    @property
    def code(self) -> str:
        """The five digits."""
        return self.status + self.message

    @property
    def published(self) -> bool:
        """Whether both parts are in APS's published tables."""
        return self.status in STATUSES and self.message in MESSAGES

    @property
    def text(self) -> str:
        """`<status text>: <message text>`, or the bare code for unpublished parts."""
        return (f"{STATUSES.get(self.status, 'status ' + self.status)}: "
                f"{MESSAGES.get(self.message, 'message ' + self.message)}")

    @classmethod
    def parse(cls, value: object) -> ResponseCode | None:
        """Five digits as a `ResponseCode`; None for anything else."""
        if isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:05d}"
        if not isinstance(value, str) or _CODE.fullmatch(value) is None:
            return None
        return cls(value[:2], value[2:])
