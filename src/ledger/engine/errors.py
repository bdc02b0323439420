"""The one error tree of the ledger.

Every refusal the ledger can give is a subclass of `LedgerError` with a stable
`code`. The tree's second level says what kind of refusal it is, and so which
HTTP class the API answers with (`ledger.api.problems` maps by these base
classes, and nothing else in the code decides a status):

    LedgerError
    ├── RequestMalformed          400  the request cannot be read as asked
    │   ├── InvalidCursor
    │   ├── MissingIdempotencyKey
    │   └── (wire format, in ledger.api.errors: MalformedJson, UnknownField,
    │        MissingField, WrongType > FloatAmount)
    ├── RequestTooLarge           413  (ledger.api.errors: BodyTooLarge)
    ├── Unauthenticated           401  no API key, or not one the ledger knows
    ├── Forbidden                 403  the key may not do this
    │   └── MissingScope, AccountOutOfReach
    ├── RateLimited               429  too many requests, or too many failures
    ├── RuleViolated              422  readable, but the ledger's rules refuse it
    │   ├── InvalidValue
    │   ├── InvalidAmount, TooFewLegs, TooManyLegs, UnbalancedTransaction
    │   ├── InvalidResolution, InvalidAccount, HotAccountLimited
    │   ├── UnknownAccount, CurrencyMismatch, CurrencyScaleMismatch
    │   ├── LimitExceeded, BalanceOverflow
    │   └── StatementMalformed, StatementUnbalanced
    ├── NotFound                  404
    │   └── AccountNotFound, TransactionNotFound, KeyNotFound, BlockNotFound,
│       WebhookNotFound, ReconciliationNotFound
    ├── Conflict                  409  clashes with what is already written
    │   ├── IdempotencyKeyReused, AlreadyReversed, AlreadyResolved
    │   ├── PendingExpired, NotPending, NotReversible, AccountExists
    │   ├── NotSealedYet
    │   └── SourceExists, ExceptionResolved
    └── Unavailable               503  the database gave no answer
        └── RetriesExhausted, OutcomeUnknown

`details` carries the facts a client needs to fix the request (which key,
which account, which leg), and becomes extension members of the problem JSON.
Nothing here knows about HTTP: the words are the ledger's.
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


# --- the request cannot be read as asked: nothing was written ---------------------


class RequestMalformed(LedgerError):
    code = "invalid-request"
    title = "The request is not valid"


class RequestTooLarge(LedgerError):
    code = "request-too-large"
    title = "The request is larger than allowed"


class MissingIdempotencyKey(RequestMalformed):
    code = "missing-idempotency-key"
    title = "Every posting needs an idempotency key"


class InvalidCursor(RequestMalformed):
    code = "invalid-cursor"
    title = "The pagination cursor is not one this service issued"


# --- who asks: the API key and what it may do --------------------------------------


class Unauthenticated(LedgerError):
    """No key, a malformed one, one the ledger does not know, or a revoked
    one: the detail says which, never anything of the key's secret."""

    code = "unauthenticated"
    title = "A valid API key is needed"


class Forbidden(LedgerError):
    code = "forbidden"
    title = "The API key may not do this"


class MissingScope(Forbidden):
    """The key lacks the scope the route declares (`details["scope"]`)."""


class AccountOutOfReach(Forbidden):
    """The key is limited to account-id prefixes, and the account named in
    `details["account_id"]` matches none of them."""


class RateLimited(LedgerError):
    """`details["retry_after_seconds"]` says when to try again."""

    code = "rate-limited"
    title = "Too many requests"


# --- the request is readable, and a rule of the ledger refuses it -------------------


class RuleViolated(LedgerError):
    code = "rule-violated"
    title = "The request breaks a rule of the ledger"


class InvalidValue(RuleViolated):
    code = "invalid-value"
    title = "A field has a value outside what is allowed"


class InvalidAmount(RuleViolated):
    code = "invalid-amount"
    title = "An amount is not a positive integer within the limit"


class TooFewLegs(RuleViolated):
    code = "too-few-legs"
    title = "A transaction needs at least two legs"


class TooManyLegs(RuleViolated):
    code = "too-many-legs"
    title = "A transaction has more legs than allowed"


class UnbalancedTransaction(RuleViolated):
    code = "unbalanced-transaction"
    title = "Debits do not equal credits"


class MovesNothing(RuleViolated):
    code = "moves-nothing"
    title = "The transaction changes no account's balance"


class InvalidResolution(RuleViolated):
    code = "invalid-resolution"
    title = "The amounts to post do not fit the pending transaction"


class InvalidAccount(RuleViolated):
    code = "invalid-account"
    title = "The account definition is not valid"


class HotAccountLimited(RuleViolated):
    code = "hot-account-limited"
    title = "A hot account cannot have a balance limit"


class UnknownAccount(RuleViolated):
    code = "unknown-account"
    title = "A leg names an account that does not exist"


class CurrencyMismatch(RuleViolated):
    code = "currency-mismatch"
    title = "A leg's currency differs from its account's"


class CurrencyScaleMismatch(RuleViolated):
    """An account's scale differs from its currency's (`details`: the
    currency, its `scale`, and the scale `asked`)."""

    code = "currency-scale-mismatch"
    title = "A currency has one scale in a ledger"


class AccountNotActive(RuleViolated):
    """A posting names a frozen or closed account (`details`: its
    `account_id` and `account_status`)."""

    code = "account-not-active"
    title = "An account is not active"


class AccountFrozen(AccountNotActive):
    code = "account-frozen"
    title = "The account is frozen: no new posting may touch it"


class AccountClosed(AccountNotActive):
    code = "account-closed"
    title = "The account is closed, for good"


class AccountNotEmpty(RuleViolated):
    code = "account-not-empty"
    title = "Only an account with nothing posted or held on it may close"


class NothingToChange(RuleViolated):
    code = "nothing-to-change"
    title = "The request changes nothing"


class LimitExceeded(RuleViolated):
    code = "limit-exceeded"
    title = "The posting would break an account's balance limit"


class BalanceOverflow(RuleViolated):
    code = "balance-overflow"
    title = "The posting would overflow an account's running totals"


class StatementMalformed(RuleViolated):
    """A statement file that cannot be read (`line` or `element` says where)."""

    code = "statement-malformed"
    title = "The statement file cannot be read"


class StatementUnbalanced(RuleViolated):
    code = "statement-unbalanced"
    title = "The statement's opening balance plus its entries is not its closing balance"


# --- the thing asked for does not exist -----------------------------------------


class NotFound(LedgerError):
    code = "not-found"
    title = "Not found"


class AccountNotFound(NotFound):
    code = "account-not-found"
    title = "No such account"


class KeyNotFound(NotFound):
    code = "key-not-found"
    title = "No such API key"


class WebhookNotFound(NotFound):
    code = "webhook-not-found"
    title = "No such webhook"


class TransactionNotFound(NotFound):
    code = "transaction-not-found"
    title = "No such transaction"


class BlockNotFound(NotFound):
    code = "block-not-found"
    title = "No such block in the sealed journal"


class ReconciliationNotFound(NotFound):
    """No such reconciliation source, run or exception (`kind` says which)."""

    code = "reconciliation-not-found"
    title = "No such reconciliation record"


# --- the request conflicts with what is already written --------------------------


class Conflict(LedgerError):
    code = "conflict"
    title = "Conflict"


class SourceExists(Conflict):
    code = "source-exists"
    title = "A reconciliation source with this id exists"


class ExceptionResolved(Conflict):
    code = "exception-resolved"
    title = "The reconciliation exception is resolved already"


class IdempotencyKeyReused(Conflict):
    code = "idempotency-key-reused"
    title = "The idempotency key was already used for a different request"


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


class WebhookNotPaused(Conflict):
    """Only a paused endpoint is resumed (`details["status"]` says what it
    is); a disabled one is turned on by a replay."""

    code = "webhook-not-paused"
    title = "The webhook endpoint is not paused"


class NotSealedYet(Conflict):
    """The transaction is committed but has no place in the sealed journal
    yet (`details["retry_after_seconds"]`: about when it will)."""

    code = "not-sealed-yet"
    title = "The transaction is not sealed into a block yet"


# --- the database could not give an answer ----------------------------------------


class Unavailable(LedgerError):
    code = "unavailable"
    title = "The ledger cannot answer right now"


class RetriesExhausted(Unavailable):
    code = "retries-exhausted"
    title = "The posting kept conflicting with others; nothing was written"


class OutcomeUnknown(Unavailable):
    code = "outcome-unknown"
    title = "Outcome unknown: retry with the same idempotency key"
