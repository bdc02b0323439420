"""The OpenAPI document as a client generator needs it: what Litestar
cannot see from the handlers' signatures, added from what the handlers
declare (`access.requires`) and from the engine's error tree.

- every status an operation can answer, each with the problem JSON schema
  and the `code`s that status can carry (the engine's error classes,
  grouped by `problems.status_of`), and the 200 of a replayed write;
- the headers: `Idempotency-Key` (required where required),
  `Ledger-Reason`, `X-Request-Id`, and on answers `Idempotent-Replayed`,
  `X-Request-Id` and `Retry-After`;
- the limits of the request fields (amount bounds, the id pattern, the leg
  count, text sizes) from the service's settings;
- component names a generator can use (`AccountPage`, not
  `Page_ledger.engine.model.Account_`).

It works on the document's JSON form, once per process (`complete`)."""

from __future__ import annotations

import copy
import re
from collections import defaultdict
from typing import Any

from ledger.api import access, problems
from ledger.api import errors as _wire  # noqa: F401 - its error classes, for codes_by_status
from ledger.api.request import IDEMPOTENCY_HEADER, REPLAYED_HEADER
from ledger.engine import ACCOUNT_ID, CURRENCY, errors
from ledger.settings import Settings

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM = {
    "type": "object",
    "description": "An RFC 9457 problem. `code` is stable; extension members carry the "
    "facts of the refusal (`pointer`, `field`, `account_id`, `max_bytes`, ...).",
    "required": ["type", "code", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri-reference", "example": "/problems/not-found"},
        "code": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}
# Refusals Litestar itself makes, answered as problems (`problems.on_http_exception`).
_FRAMEWORK_CODES = {400: ["wrong-type"], 404: ["not-found"]}
_WHAT = {
    400: "The request is malformed (body, header or query)",
    401: "No valid API key",
    403: "The key lacks the scope, or does not reach the account",
    404: "The thing named in the path does not exist",
    409: "A conflict with what exists (a reused key, a resolved transaction, ...)",
    413: "The body is larger than the limit",
    415: "The body is not JSON",
    422: "A rule of the ledger refuses the request",
    429: "Too many requests; see Retry-After",
    503: "The database gave no answer; retry (with the same Idempotency-Key)",
}
_REQUEST_ID = {
    "name": access.REQUEST_ID_HEADER,
    "in": "header",
    "required": False,
    "description": "Your id for the request, echoed on the answer and kept in the audit "
    "trail (one is made when absent).",
    "schema": {"type": "string", "maxLength": access.MAX_REQUEST_ID_CHARS},
}
_REASON = {
    "name": access.REASON_HEADER,
    "in": "header",
    "required": False,
    "description": "Why this write is made; kept in the audit trail (and on an account's changes).",
    "schema": {"type": "string", "maxLength": 500},
}
_ANSWER_HEADERS = {
    access.REQUEST_ID_HEADER: {
        "description": "The request's id.",
        "schema": {"type": "string"},
    },
    "RateLimit-Policy": {
        "description": "For a key with a rate of its own: its policy, "
        '`"key";q=<requests>;w=1` (draft-ietf-httpapi-ratelimit-headers).',
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": "For a key with a rate of its own: what is left of the window, "
        '`"key";r=<remaining>;t=<seconds to its reset>`.',
        "schema": {"type": "string"},
    },
}


def codes_by_status() -> dict[int, list[str]]:
    """Every code the engine and the API layer can answer, by HTTP status."""
    found: dict[int, set[str]] = defaultdict(set)
    stack: list[type[errors.LedgerError]] = [errors.LedgerError]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        status = next(
            (problems.STATUS_BY_KIND[c] for c in cls.__mro__ if c in problems.STATUS_BY_KIND), None
        )
        if status is not None:
            found[status].add(cls.code)
    for status, codes in _FRAMEWORK_CODES.items():
        found[status].update(codes)
    return {status: sorted(codes) for status, codes in found.items()}


def complete(
    document: dict[str, Any], handlers: dict[tuple[str, str], dict], settings: Settings
) -> dict[str, Any]:
    """A completed copy of `document`. `handlers` maps (path, method) to
    the handler's `opt` (its scope, audit action, idempotency)."""
    doc = copy.deepcopy(document)
    doc["paths"] = {p: v for p, v in doc["paths"].items() if not p.startswith("/schema")}
    _rename_pages(doc)
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM
    codes = codes_by_status()
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "patch", "put", "delete"}:
                opt = handlers.get((path, method.upper()), {})
                _complete_operation(operation, opt, codes, settings)
    return doc


def _complete_operation(
    operation: dict, opt: dict, codes: dict[int, list[str]], settings: Settings
) -> None:
    scope = opt.get(access.SCOPE_OPT)
    params = operation.setdefault("parameters", [])
    params.append(_REQUEST_ID)
    statuses = {400, 503}
    if scope != access.PUBLIC:
        statuses |= {401, 403, 429}
    if any(p.get("in") == "path" for p in params):
        statuses.add(404)
    query = [p for p in params if p.get("in") == "query"]
    if query:
        statuses.add(422)  # a value out of range: invalid-value
        _constrain_query(query, settings)
    body = operation.get("requestBody")
    if body is not None:
        statuses |= {413, 415, 422}
        for media in body["content"].values():
            _constrain(media["schema"], settings)
    if opt.get(access.ACTION_OPT):
        params.append(_REASON)
        statuses |= {409, 422}
    idempotency = opt.get(access.IDEMPOTENCY_OPT)
    if idempotency:
        params.append(_idempotency_header(idempotency, settings))
        statuses.add(409)
        _document_replay(operation)
    statuses |= set(opt.get(access.ANSWERS_OPT, ()))
    responses = operation.setdefault("responses", {})
    for answer in responses.values():
        answer.setdefault("headers", {}).update(_ANSWER_HEADERS)
        for media, content in answer.get("content", {}).items():
            # Text that is not JSON (Prometheus' exposition, an event
            # stream): a string, as a client generator should read it.
            if media.startswith("text/") and not content.get("schema"):
                content["schema"] = {"type": "string"}
    for status in sorted(statuses):
        responses[str(status)] = _problem_response(status, codes.get(status, []))


def _idempotency_header(kind: str, settings: Settings) -> dict:
    required = kind == "required"
    return {
        "name": IDEMPOTENCY_HEADER,
        "in": "header",
        "required": required,
        "description": (
            "A unique string per request, reused only to retry that same request: the "
            "retry answers 200 with the stored result and Idempotent-Replayed: true; "
            "another request under the key is a 409."
            + ("" if required else " Needed when the body has no `id`.")
        ),
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": settings.max_idempotency_key_chars,
        },
    }


def _document_replay(operation: dict) -> None:
    responses = operation.setdefault("responses", {})
    created = responses.get("201")
    if created is None:
        return
    replay = copy.deepcopy(created)
    replay["description"] = "A retry under the same Idempotency-Key: the stored answer."
    replay.setdefault("headers", {})[REPLAYED_HEADER] = {
        "description": "true on a replayed answer",
        "schema": {"type": "string", "enum": ["true"]},
    }
    responses["200"] = replay


def _problem_response(status: int, codes: list[str]) -> dict:
    schema: dict[str, Any] = {"allOf": [PROBLEM_REF]}
    if codes:
        schema = {
            "allOf": [
                PROBLEM_REF,
                {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string", "enum": codes},
                        "status": {"type": "integer", "enum": [status]},
                    },
                },
            ]
        }
    headers = dict(_ANSWER_HEADERS)
    if status in (429, 503):
        headers["Retry-After"] = {
            "description": "Seconds to wait before retrying.",
            "schema": {"type": "integer"},
        }
    if status == 401:
        headers["WWW-Authenticate"] = {"schema": {"type": "string"}}
    listed = ", ".join(f"`{c}`" for c in codes)
    return {
        "description": f"{_WHAT.get(status, 'A problem')}."
        + (f" Codes: {listed}." if listed else ""),
        "headers": headers,
        "content": {problems.PROBLEM_JSON: {"schema": schema}},
    }


def _constrain_query(params: list[dict], settings: Settings) -> None:
    limits = {
        "limit": {"type": "integer", "minimum": 1, "maximum": settings.max_page_size},
        "consistency": {"type": "string", "enum": ["strong", "stale"]},
        "as_of": {"type": "string", "format": "date-time"},
        "since": {"type": "string", "format": "date-time"},
        "until": {"type": "string", "format": "date-time"},
    }
    for param in params:
        extra = limits.get(param["name"])
        if extra is not None:
            param["schema"] = {
                **extra,
                **(
                    {"default": d}
                    if (d := param.get("schema", {}).get("default")) is not None
                    else {}
                ),
            }


def _constrain(schema: dict, settings: Settings) -> None:
    """The limits the service enforces on request fields, by field name,
    wherever they appear in a body's schema."""
    limits = {
        "amount": {"minimum": 1, "maximum": settings.max_amount},
        "amounts": {"minItems": 1, "maxItems": settings.max_legs},
        "entries": {"minItems": 2, "maxItems": settings.max_legs},
        "account_id": {"pattern": ACCOUNT_ID.pattern},
        "currency": {"pattern": CURRENCY.pattern},
        "description": {"maxLength": settings.max_description_chars},
        "timeout_seconds": {"minimum": 1, "maximum": settings.max_timeout_seconds},
        "scale": {"minimum": 0, "maximum": 18},
    }
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        for name, prop in (node.get("properties") or {}).items():
            extra = limits.get(name)
            if extra is not None:
                for target in prop.get("anyOf", prop.get("oneOf", [prop])):
                    if target.get("type") != "null":
                        target.update(extra)
        stack.extend(v for v in node.values() if isinstance(v, dict | list))


_PAGE = re.compile(r"^Page_[\w.]*?\.(?P<item>\w+)_$")


def _rename_pages(doc: dict) -> None:
    """`Page_ledger.engine.model.Account_` -> `AccountPage`, refs included."""
    schemas = doc.get("components", {}).get("schemas", {})
    renames = {}
    for name in list(schemas):
        m = _PAGE.match(name)
        if m:
            renames[name] = f"{m.group('item')}Page"
            schemas[renames[name]] = schemas.pop(name)
            schemas[renames[name]]["title"] = renames[name]
    if not renames:
        return
    stack: list[Any] = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in renames:
                node["$ref"] = "#/components/schemas/" + renames[ref.rsplit("/", 1)[-1]]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
