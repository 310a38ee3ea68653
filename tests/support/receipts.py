"""Receipts as the store serves them: every one of them, page by page."""

from __future__ import annotations

from api.store import AlertStore
from api.tables import Receipt


def walk(store: AlertStore, *, limit: int, audit_id: str | None = None) -> tuple[list[Receipt], int]:
    """Every receipt, page by page; and the number of pages."""
    seen: list[Receipt] = []
    cursor = None
    pages = 0
    while True:
        items, cursor = store.list_receipts(audit_id=audit_id, limit=limit, cursor=cursor)
        seen += [(i["audit_id"], i["stage"], i["stage_timestamp"]) for i in items]
        pages += 1
        if cursor is None:
            return seen, pages
