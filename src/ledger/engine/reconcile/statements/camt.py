"""ISO 20022 camt.053 (bank-to-customer statement), every published
version: elements are found by local name, so the namespace's version
number does not matter, and `Sts` is read bare (.001.02) or wrapped in
`<Cd>` (later versions). Parsed with lxml with entities, DTDs and the
network off; a file with a DOCTYPE at all is refused (no statement has
one; an XXE or billion-laughs file does)."""

from __future__ import annotations

import functools

from lxml import etree

from ledger.engine import errors
from ledger.engine.reconcile.model import Line, NewSource, ParsedStatement, zone
from ledger.engine.reconcile.statements.values import clean, day, malformed, minor_units

NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:camt.053.001."
STATUSES = {"BOOK": "booked", "PDNG": "pending", "INFO": "info"}
OPENING = ("OPBD", "PRCD")
CLOSING = ("CLBD",)


@functools.cache
def q(ns: str, path: str) -> str:
    """`path` with its `{*}` wildcards made the document's namespace: lxml
    finds by an exact namespace several times faster than by a wildcard."""
    return path.replace("{*}", "{" + ns + "}")


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse(body: bytes, source: NewSource, scale: int) -> ParsedStatement:
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as exc:
        raise malformed({"line": exc.lineno or 0}, f"not well-formed XML: {exc.msg}") from exc
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise malformed({"element": "DOCTYPE"}, "a statement may not carry a DOCTYPE")
    if not (root.tag.startswith("{" + NAMESPACE) and root.tag.endswith("}Document")):
        raise malformed(
            {"element": etree.QName(root).localname, "line": root.sourceline},
            f"expected a camt.053 Document (namespace {NAMESPACE}NN), got {root.tag}",
        )
    ns = etree.QName(root).namespace
    statements = root.findall(q(ns, "{*}BkToCstmrStmt/{*}Stmt"))
    if not statements:
        raise malformed({"element": "BkToCstmrStmt"}, "the file holds no Stmt")
    lines: list[Line] = []
    opening = closing = None
    account = None
    for s, stmt in enumerate(statements, 1):
        reader = _Statement(stmt, s, source, scale, len(lines), ns)
        got = reader.lines()
        lines.extend(got)
        opened, closed = reader.balances(got)
        opening = opened if opening is None else opening
        closing = closed
        account = account or reader.account()
    return ParsedStatement(lines=lines, opening=opening, closing=closing, account=account)


class _Statement:
    def __init__(
        self, stmt, number: int, source: NewSource, scale: int, before: int, ns: str
    ) -> None:
        self.stmt = stmt
        self.ns = ns
        self.path = f"Stmt[{number}]"
        self.source = source
        self.scale = scale
        self.zone = zone(source.timezone)
        self.before = before

    def q(self, path: str) -> str:
        return q(self.ns, path)

    def account(self) -> str | None:
        acct = self.stmt.find(self.q("{*}Acct/{*}Id"))
        if acct is None:
            return None
        return clean(acct.findtext(self.q("{*}IBAN")) or acct.findtext(self.q("{*}Othr/{*}Id")), 64)

    def _where(self, element, path: str) -> dict:
        return {"element": f"{self.path}/{path}", "line": element.sourceline}

    def _amount(self, holder, path: str, kids: dict | None = None) -> int:
        """The `Amt` under `holder`, in minor units, its currency checked."""
        amt = (kids if kids is not None else _kids(holder)).get("Amt")
        where = self._where(holder, path)
        if amt is None:
            raise malformed(where, "Amt is missing")
        currency = amt.get("Ccy")
        if currency != self.source.currency:
            raise malformed(
                where, f"currency {currency!r} is not the source's {self.source.currency}"
            )
        return minor_units(amt.text, self.scale, where, signed=False)

    def _sign(self, holder, path: str, kids: dict | None = None) -> int:
        found = (kids if kids is not None else _kids(holder)).get("CdtDbtInd")
        indicator = ("" if found is None else found.text or "").strip()
        if indicator not in ("CRDT", "DBIT"):
            raise malformed(
                self._where(holder, path), f"CdtDbtInd {indicator!r} is not CRDT or DBIT"
            )
        return 1 if indicator == "CRDT" else -1

    def balances(self, lines: list[Line]) -> tuple[int, int]:
        found: dict[str, int] = {}
        for b, bal in enumerate(self.stmt.findall(self.q("{*}Bal")), 1):
            code = (bal.findtext(self.q("{*}Tp/{*}CdOrPrtry/{*}Cd")) or "").strip()
            if code in OPENING + CLOSING:
                path = f"Bal[{b}]"
                found.setdefault(code, self._sign(bal, path) * self._amount(bal, path))
        opening = next((found[c] for c in OPENING if c in found), None)
        closing = next((found[c] for c in CLOSING if c in found), None)
        if opening is None or closing is None:
            missing = "opening (OPBD)" if opening is None else "closing (CLBD)"
            raise malformed({"element": f"{self.path}/Bal"}, f"the {missing} balance is missing")
        booked = sum(line.amount for line in lines if line.status == "booked")
        if opening + booked != closing:
            raise errors.StatementUnbalanced(
                f"{self.path}: opening {opening} plus entries {booked} is {opening + booked}, "
                f"but the closing balance is {closing} (minor units)",
                element=self.path,
                opening=opening,
                entries=booked,
                closing=closing,
            )
        return opening, closing

    def lines(self) -> list[Line]:
        out: list[Line] = []
        for n, ntry in enumerate(self.stmt.findall(self.q("{*}Ntry")), 1):
            out.extend(self._entry(ntry, n, self.before + len(out)))
        return out

    def _entry(self, ntry, n: int, before: int) -> list[Line]:
        # Each element's children are read once into a dict by local name:
        # lxml's path finds are Python code, and a statement has 100,000s.
        kids = _kids(ntry)
        path = f"Ntry[{n}]"
        where = self._where(ntry, path)
        amount = self._sign(ntry, path, kids) * self._amount(ntry, path, kids)
        status_el = kids.get("Sts")
        code = "" if status_el is None else (_text(status_el, "Cd") or status_el.text or "")
        status = STATUSES.get(code.strip())
        if status is None:
            raise malformed(where, f"Sts {code.strip()!r} is not BOOK, PDNG or INFO")
        dated = kids.get("BookgDt", kids.get("ValDt"))
        when = None if dated is None else (_text(dated, "Dt") or _text(dated, "DtTm"))
        booked_on = day(when, self.zone, where)
        bank_ref = clean(_own(kids, "AcctSvcrRef"), 255)
        reversal = (_own(kids, "RvslInd") or "").strip().lower() in ("true", "1")
        common = {
            "currency": self.source.currency,
            "booked_on": booked_on,
            "status": status,
            "reversal": reversal,
        }
        details = [
            tx
            for holder in ntry.iterchildren(self.q("{*}NtryDtls"))
            for tx in holder.iterchildren(self.q("{*}TxDtls"))
        ]
        parts = self._split(details, amount, path) if len(details) > 1 else None
        if parts is not None:
            group = bank_ref or f"{self.path}/{path}"
            return [
                Line(line_no=before + i + 1, amount=part, group=group, **common, **_refs(tx))
                for i, (tx, part) in enumerate(zip(details, parts, strict=True))
            ]
        refs = _refs(details[0]) if len(details) == 1 else {}
        if refs.get("external_id") is None:
            refs["external_id"] = bank_ref
        if not refs.get("description"):
            refs["description"] = clean(_own(kids, "AddtlNtryInf"))
        return [Line(line_no=before + 1, amount=amount, **common, **refs)]

    def _split(self, details, amount: int, path: str) -> list[int] | None:
        """A batch booking's transactions, when each states its amount and
        they add up to the entry's; else None (the entry stays one line)."""
        sign = 1 if amount >= 0 else -1
        parts = []
        for t, tx in enumerate(details, 1):
            holder = tx.find(self.q("{*}AmtDtls/{*}TxAmt"))
            if holder is None:
                holder = tx if tx.find(self.q("{*}Amt")) is not None else None
            if holder is None:
                return None
            tx_path = f"{path}/NtryDtls/TxDtls[{t}]"
            indicator = tx.findtext(self.q("{*}CdtDbtInd"))
            part_sign = sign if indicator is None else self._sign(tx, tx_path)
            parts.append(part_sign * self._amount(holder, tx_path))
        return parts if sum(parts) == amount else None


def _kids(element) -> dict:
    """An element's children by local name (the last of a repeated one)."""
    return {child.tag.rpartition("}")[2]: child for child in element}


def _own(kids: dict, name: str) -> str | None:
    found = kids.get(name)
    return None if found is None else found.text


def _walk(element, *names: str):
    for name in names:
        if element is None:
            return None
        element = _kids(element).get(name)
    return element


def _text(element, *names: str) -> str | None:
    found = _walk(element, *names)
    return None if found is None else found.text


def _refs(tx) -> dict:
    """A transaction's references: the one matched against the ledger (the
    end-to-end id, else the structured creditor reference, else the
    unstructured remittance text, else the instruction id), the bank's own
    id, and a description."""
    kids = _kids(tx)
    refs = _kids(kids["Refs"]) if "Refs" in kids else {}
    remittance = kids.get("RmtInf")
    end_to_end = clean(_own(refs, "EndToEndId"), 255)
    if end_to_end == "NOTPROVIDED":
        end_to_end = None
    unstructured = clean(_text(remittance, "Ustrd"))
    reference = (
        end_to_end
        or clean(_text(remittance, "Strd", "CdtrRefInf", "Ref"), 255)
        or (unstructured[:255] if unstructured else None)
        or clean(_own(refs, "InstrId"), 255)
    )
    external = clean(_own(refs, "AcctSvcrRef"), 255) or clean(_own(refs, "UETR"), 255)
    return {"reference": reference, "external_id": external, "description": unstructured}
