"""Errors of the wire format: a body that is not the JSON an endpoint reads.

They belong to the API, not to the ledger: the engine never sees bytes. Each
hangs under the engine's tree by the kind of refusal it is (see
`ledger.engine.errors`), so `problems.py` maps them with everything else.
"""

from __future__ import annotations

from ledger.engine.errors import RequestMalformed, RequestTooLarge


class MalformedJson(RequestMalformed):
    code = "malformed-json"
    title = "The body is not valid JSON"


class DuplicateKey(RequestMalformed):
    code = "duplicate-key"
    title = "A JSON object has the same key twice"


class UnknownQueryParameter(RequestMalformed):
    code = "unknown-query-parameter"
    title = "The query has a parameter this endpoint does not know"


class UnknownField(RequestMalformed):
    code = "unknown-field"
    title = "The body has a field this endpoint does not know"


class MissingField(RequestMalformed):
    code = "missing-field"
    title = "A required field is missing"


class WrongType(RequestMalformed):
    code = "wrong-type"
    title = "A field has the wrong type"


class FloatAmount(WrongType):
    code = "float-amount"
    title = "Amounts are integers of minor units, never floats"


class BodyTooLarge(RequestTooLarge):
    code = "body-too-large"
    title = "The request body is larger than allowed"


class UnsupportedMediaType(RequestMalformed):
    """A body sent as anything but JSON. Refusing it means no form a browser
    may post across origins without asking first ("simple" requests:
    form-encoded, multipart, text/plain) can reach a write."""

    code = "unsupported-media-type"
    title = "Bodies are application/json"
