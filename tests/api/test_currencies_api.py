"""One scale per currency, as a client meets it."""

from support.ids import fresh_id


async def test_the_reported_thousandth_of_a_cent_against_a_dollar_is_refused(client):
    usd = {"id": fresh_id(), "currency": "USD", "normal_side": "debit"}
    made = await client.post("/accounts", json=usd)
    assert made.status_code == 201 and made.json()["scale"] == 2
    odd = {"id": fresh_id(), "currency": "USD", "scale": 5, "normal_side": "credit"}
    refused = await client.post("/accounts", json=odd)
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["code"] == "currency-scale-mismatch"
    assert (body["currency"], body["scale"], body["asked"]) == ("USD", 2, 5)
    assert "scale 2" in body["detail"] and "scale 5" in body["detail"]
    assert (await client.get(f"/accounts/{odd['id']}")).status_code == 404


async def test_currencies_in_use_are_listed_with_their_scale(client):
    code = "P" + fresh_id("")[-8:].upper()
    assert (
        await client.post(
            "/accounts", json={"id": fresh_id(), "currency": "JPY", "normal_side": "debit"}
        )
    ).json()["scale"] == 0
    needs = await client.post(
        "/accounts", json={"id": fresh_id(), "currency": code, "normal_side": "debit"}
    )
    assert needs.status_code == 422 and needs.json()["field"] == "scale"
    made = await client.post(
        "/accounts", json={"id": fresh_id(), "currency": code, "scale": 3, "normal_side": "debit"}
    )
    assert made.status_code == 201
    listed = {c["code"]: c["scale"] for c in (await client.get("/currencies")).json()["items"]}
    assert listed[code] == 3 and listed["JPY"] == 0
