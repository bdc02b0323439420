"""Access helpers: a bearer header, a transfer body, a refusal's problem."""

from __future__ import annotations


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def transfer(a: str, b: str, amount: int = 10) -> dict:
    return {
        "entries": [
            {"account_id": a, "direction": "debit", "amount": amount},
            {"account_id": b, "direction": "credit", "amount": amount},
        ]
    }


def refused(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    assert response.headers["content-type"].startswith("application/problem+json")
    return body
