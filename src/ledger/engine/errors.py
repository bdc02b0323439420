"""The one error tree of the ledger.

Every refusal the ledger can give is a subclass of `LedgerError` with a stable
`code`. The API maps classes to HTTP statuses in one place
(`ledger.api.problems`); nothing else in the code decides a status.
`details` carries the facts a client needs to fix the request (which key,
which account, which leg), and becomes extension members of the problem JSON.
"""

from __future__ import annotations

from typing import Any, ClassVar


class LedgerError(Exception):
    code: ClassVar[str] = "ledger-error"
    title: ClassVar[str] = "Ledger error"

    def __init__(self, detail: str, **details: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.details = details


# --- the request is wrong: nothing was written --------------------------------


class InvalidRequest(LedgerError):
    code = "invalid-request"
    title = "The request is not valid"


class MalformedJson(InvalidRequest):
    code = "malformed-json"
    title = "The body is not valid JSON"


class UnknownField(InvalidRequest):
    code = "unknown-field"
    title = "The body has a field this endpoint does not know"


class MissingField(InvalidRequest):
    code = "missing-field"
    title = "A required field is missing"


class WrongType(InvalidRequest):
    code = "wrong-type"
    title = "A field has the wrong type"


class FloatAmount(WrongType):
    code = "float-amount"
    title = "Amounts are integers of minor units, never floats"


class InvalidValue(InvalidRequest):
    code = "invalid-value"
    title = "A field has a value outside what is allowed"


class InvalidAmount(InvalidRequest):
    code = "invalid-amount"
    title = "An amount is not a positive integer within the limit"


class TooFewLegs(InvalidRequest):
    code = "too-few-legs"
    title = "A transaction needs at least two legs"


class TooManyLegs(InvalidRequest):
    code = "too-many-legs"
    title = "A transaction has more legs than allowed"


class UnbalancedTransaction(InvalidRequest):
    code = "unbalanced-transaction"
    title = "Debits do not equal credits"


class InvalidResolution(InvalidRequest):
    code = "invalid-resolution"
    title = "The amounts to post do not fit the pending transaction"


class InvalidAccount(InvalidRequest):
    code = "invalid-account"
    title = "The account definition is not valid"


class HotAccountLimited(InvalidRequest):
    code = "hot-account-limited"
    title = "A hot account cannot have a balance limit"


class UnknownAccount(InvalidRequest):
    code = "unknown-account"
    title = "A leg names an account that does not exist"


class CurrencyMismatch(InvalidRequest):
    code = "currency-mismatch"
    title = "A leg's currency differs from its account's"


class LimitExceeded(InvalidRequest):
    code = "limit-exceeded"
    title = "The posting would break an account's balance limit"


class BalanceOverflow(InvalidRequest):
    code = "balance-overflow"
    title = "The posting would overflow an account's running totals"


class MissingIdempotencyKey(InvalidRequest):
    code = "missing-idempotency-key"
    title = "The Idempotency-Key header is required"


class InvalidCursor(InvalidRequest):
    code = "invalid-cursor"
    title = "The pagination cursor is not one this service issued"


class BodyTooLarge(InvalidRequest):
    code = "body-too-large"
    title = "The request body is larger than allowed"


# --- the thing asked for does not exist -----------------------------------------


class NotFound(LedgerError):
    code = "not-found"
    title = "Not found"


class AccountNotFound(NotFound):
    code = "account-not-found"
    title = "No such account"


class TransactionNotFound(NotFound):
    code = "transaction-not-found"
    title = "No such transaction"


# --- the request conflicts with what is already written --------------------------


class Conflict(LedgerError):
    code = "conflict"
    title = "Conflict"


class IdempotencyKeyReused(Conflict):
    code = "idempotency-key-reused"
    title = "The Idempotency-Key was already used for a different request"


class AlreadyReversed(Conflict):
    code = "already-reversed"
    title = "The transaction has already been reversed"


class AlreadyResolved(Conflict):
    code = "already-resolved"
    title = "The pending transaction was already posted, voided or expired"


class PendingExpired(Conflict):
    code = "pending-expired"
    title = "The pending transaction has expired"


class NotPending(Conflict):
    code = "not-pending"
    title = "Only a pending transaction can be posted or voided"


class NotReversible(Conflict):
    code = "not-reversible"
    title = "This transaction cannot be reversed"


class AccountExists(Conflict):
    code = "account-exists"
    title = "An account with this id exists with other attributes"


# --- the database could not give an answer ----------------------------------------


class Unavailable(LedgerError):
    code = "unavailable"
    title = "The ledger cannot answer right now"


class RetriesExhausted(Unavailable):
    code = "retries-exhausted"
    title = "The posting kept conflicting with others; nothing was written"


class OutcomeUnknown(Unavailable):
    code = "outcome-unknown"
    title = "Outcome unknown: retry with the same Idempotency-Key"
