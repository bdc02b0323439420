"""ISO 20022 camt.053 (bank-to-customer statement), every published
version: elements are found by local name, so the namespace's version
number does not matter, and `Sts` is read bare (.001.02) or wrapped in
`<Cd>` (later versions). Parsed with lxml with entities, DTDs and the
network off; a file with a DOCTYPE at all is refused (no statement has
one; an XXE or billion-laughs file does)."""

from __future__ import annotations

from lxml import etree

from ledger.engine import errors
from ledger.engine.reconcile.model import Line, NewSource, ParsedStatement, zone
from ledger.engine.reconcile.statements.values import clean, day, malformed, minor_units

NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:camt.053.001."
STATUSES = {"BOOK": "booked", "PDNG": "pending", "INFO": "info"}
OPENING = ("OPBD", "PRCD")
CLOSING = ("CLBD",)


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
    statements = root.findall("{*}BkToCstmrStmt/{*}Stmt")
    if not statements:
        raise malformed({"element": "BkToCstmrStmt"}, "the file holds no Stmt")
    lines: list[Line] = []
    opening = closing = None
    account = None
    for s, stmt in enumerate(statements, 1):
        reader = _Statement(stmt, s, source, scale, len(lines))
        got = reader.lines()
        lines.extend(got)
        opened, closed = reader.balances(got)
        opening = opened if opening is None else opening
        closing = closed
        account = account or reader.account()
    return ParsedStatement(lines=lines, opening=opening, closing=closing, account=account)


class _Statement:
    def __init__(self, stmt, number: int, source: NewSource, scale: int, before: int) -> None:
        self.stmt = stmt
        self.path = f"Stmt[{number}]"
        self.source = source
        self.scale = scale
        self.zone = zone(source.timezone)
        self.before = before

    def account(self) -> str | None:
        acct = self.stmt.find("{*}Acct/{*}Id")
        if acct is None:
            return None
        return clean(acct.findtext("{*}IBAN") or acct.findtext("{*}Othr/{*}Id"), 64)

    def _where(self, element, path: str) -> dict:
        return {"element": f"{self.path}/{path}", "line": element.sourceline}

    def _amount(self, holder, path: str) -> int:
        """The `Amt` under `holder`, in minor units, its currency checked."""
        amt = holder.find("{*}Amt")
        where = self._where(holder, path)
        if amt is None:
            raise malformed(where, "Amt is missing")
        currency = amt.get("Ccy")
        if currency != self.source.currency:
            raise malformed(
                where, f"currency {currency!r} is not the source's {self.source.currency}"
            )
        return minor_units(amt.text, self.scale, where, signed=False)

    def _sign(self, holder, path: str) -> int:
        indicator = (holder.findtext("{*}CdtDbtInd") or "").strip()
        if indicator not in ("CRDT", "DBIT"):
            raise malformed(
                self._where(holder, path), f"CdtDbtInd {indicator!r} is not CRDT or DBIT"
            )
        return 1 if indicator == "CRDT" else -1

    def balances(self, lines: list[Line]) -> tuple[int, int]:
        found: dict[str, int] = {}
        for b, bal in enumerate(self.stmt.findall("{*}Bal"), 1):
            code = (bal.findtext("{*}Tp/{*}CdOrPrtry/{*}Cd") or "").strip()
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
        for n, ntry in enumerate(self.stmt.findall("{*}Ntry"), 1):
            out.extend(self._entry(ntry, n, self.before + len(out)))
        return out

    def _entry(self, ntry, n: int, before: int) -> list[Line]:
        path = f"Ntry[{n}]"
        where = self._where(ntry, path)
        amount = self._sign(ntry, path) * self._amount(ntry, path)
        status_el = ntry.find("{*}Sts")
        code = "" if status_el is None else (status_el.findtext("{*}Cd") or status_el.text or "")
        status = STATUSES.get(code.strip())
        if status is None:
            raise malformed(where, f"Sts {code.strip()!r} is not BOOK, PDNG or INFO")
        dated = ntry.find("{*}BookgDt")
        if dated is None:
            dated = ntry.find("{*}ValDt")
        when = None if dated is None else (dated.findtext("{*}Dt") or dated.findtext("{*}DtTm"))
        booked_on = day(when, self.zone, where)
        bank_ref = clean(ntry.findtext("{*}AcctSvcrRef"), 255)
        common = {
            "currency": self.source.currency,
            "booked_on": booked_on,
            "status": status,
            "reversal": (ntry.findtext("{*}RvslInd") or "").strip().lower() in ("true", "1"),
        }
        details = ntry.findall("{*}NtryDtls/{*}TxDtls")
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
            refs["description"] = clean(ntry.findtext("{*}AddtlNtryInf"))
        return [Line(line_no=before + 1, amount=amount, **common, **refs)]

    def _split(self, details, amount: int, path: str) -> list[int] | None:
        """A batch booking's transactions, when each states its amount and
        they add up to the entry's; else None (the entry stays one line)."""
        sign = 1 if amount >= 0 else -1
        parts = []
        for t, tx in enumerate(details, 1):
            holder = tx.find("{*}AmtDtls/{*}TxAmt")
            if holder is None:
                holder = tx if tx.find("{*}Amt") is not None else None
            if holder is None:
                return None
            tx_path = f"{path}/NtryDtls/TxDtls[{t}]"
            indicator = tx.findtext("{*}CdtDbtInd")
            part_sign = sign if indicator is None else self._sign(tx, tx_path)
            parts.append(part_sign * self._amount(holder, tx_path))
        return parts if sum(parts) == amount else None


def _refs(tx) -> dict:
    """A transaction's references: the one matched against the ledger (the
    end-to-end id, else the structured creditor reference, else the
    unstructured remittance text, else the instruction id), the bank's own
    id, and a description."""
    end_to_end = clean(tx.findtext("{*}Refs/{*}EndToEndId"), 255)
    if end_to_end == "NOTPROVIDED":
        end_to_end = None
    unstructured = clean(tx.findtext("{*}RmtInf/{*}Ustrd"))
    reference = (
        end_to_end
        or clean(tx.findtext("{*}RmtInf/{*}Strd/{*}CdtrRefInf/{*}Ref"), 255)
        or (unstructured[:255] if unstructured else None)
        or clean(tx.findtext("{*}Refs/{*}InstrId"), 255)
    )
    external = clean(tx.findtext("{*}Refs/{*}AcctSvcrRef"), 255) or clean(
        tx.findtext("{*}Refs/{*}UETR"), 255
    )
    return {"reference": reference, "external_id": external, "description": unstructured}
