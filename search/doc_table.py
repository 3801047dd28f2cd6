"""Compact in-memory tables of the searchable documents and of which chunk belongs to which.

A search state needs a few fields of every searchable document (title, the fix, product,
routing facts) and the document of every chunk. As Python objects a million incidents
cost well over a gigabyte per worker; here they are columns instead:

- text that differs per incident (id, title, time) is one UTF-8 buffer with offsets;
- text that repeats (product, status, a resolution note shared by many incidents) is a
  small list of distinct values and one 32-bit code per incident;
- a document is found by the 64-bit hash of its key in a sorted array (checked against
  the stored key, so a collision costs a second look, never a wrong answer);
- articles are few and keep their full objects.

Both tables are built once per index version and then change by small overlays (the
change log replayed since), which keep the same lookups; a new version starts afresh.
``DocTable`` is a ``Mapping[DocKey, DocInfo]`` and ``ChunkDocs`` a ``Mapping[int, DocKey]``,
so callers read them as the dicts they replace.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from search.state import DocInfo, DocKey

# The fields of an incident kept as codes into lists of distinct values.
CODED_FIELDS = (
    "resolution",
    "product",
    "category",
    "status",
    "article_id",
    "res_key",
    "assignment_group",
    "priority",
    "escalated",
)
# The fields kept in per-incident text buffers.
TEXT_FIELDS = ("id", "title", "updated")
_DELETED = None
# Documents a table keeps built from their rows (then it starts afresh).
RECENT_DOCS = 20_000
NO_ROW = -(2**31)
MISSING = object()


class _Codes:
    """Distinct values of one field and the code of each."""

    __slots__ = ("values", "index")

    def __init__(self):
        self.values: list[str] = [""]
        self.index: dict[str, int] = {"": 0}

    def code(self, value: str) -> int:
        found = self.index.get(value)
        if found is None:
            found = self.index[value] = len(self.values)
            self.values.append(value)
        return found


class _Texts:
    """Many short strings in one buffer."""

    __slots__ = ("buffer", "offsets")

    def __init__(self):
        self.buffer = bytearray()
        self.offsets = array("q", [0])

    def append(self, value: str) -> None:
        self.buffer += value.encode("utf-8")
        self.offsets.append(len(self.buffer))

    def freeze(self) -> None:
        self.buffer = bytes(self.buffer)

    def get(self, row: int) -> str:
        return self.buffer[self.offsets[row] : self.offsets[row + 1]].decode("utf-8")


class DocTable(Mapping):
    """The searchable documents of one state, by (kind, id)."""

    def __init__(self, docs: Iterable[DocInfo] = ()):
        self._articles: dict[DocKey, DocInfo] = {}
        self._codes = {name: _Codes() for name in CODED_FIELDS}
        self._coded = {name: array("i") for name in CODED_FIELDS}
        self._texts = {name: _Texts() for name in TEXT_FIELDS}
        hashes = array("q")
        for doc in docs:
            if doc.kind != "incident":
                self._articles[doc.key] = doc
                continue
            for name in CODED_FIELDS:
                self._coded[name].append(self._codes[name].code(getattr(doc, name)))
            for name in TEXT_FIELDS:
                self._texts[name].append(getattr(doc, name))
            hashes.append(hash(doc.key))
        for texts in self._texts.values():
            texts.freeze()
        self._columns = {
            name: np.frombuffer(column, dtype=np.int32)
            if len(column)
            else np.zeros(0, dtype=np.int32)
            for name, column in self._coded.items()
        }
        self._coded = {}
        unsorted = (
            np.frombuffer(hashes, dtype=np.int64) if len(hashes) else np.zeros(0, dtype=np.int64)
        )
        self._order = np.argsort(unsorted, kind="stable").astype(np.int32)
        self._hashes = unsorted[self._order]
        self._rows = len(unsorted)
        # Column arrays as Python lists are faster to index; kept as compact arrays they
        # are what the memory is for, so only the columns' views are made here.
        self._coded_lists = [
            (
                name,
                memoryview(self._columns[name]).cast("B").cast("i") if self._rows else [],
                self._codes[name].values,
            )
            for name in CODED_FIELDS
        ]
        # Documents built from their rows lately (a ranking reads the same ones many times),
        # and rows looked up lately; the base rows never change, so neither goes stale.
        self._recent: dict[DocKey, DocInfo] = {}
        self._recent_rows: dict[DocKey, int | None] = {}
        # Changes since the table was built: a document, or None where one was removed.
        self._overlay: dict[DocKey, DocInfo | None] = {}
        self._dropped = 0  # base rows hidden by the overlay

    # --- lookups ----------------------------------------------------------------------

    def row_of(self, key: DocKey) -> int | None:
        """The base row of an incident key (ignoring the overlay), else None."""
        if key[0] != "incident" or not self._rows:
            return None
        found = self._recent_rows.get(key, MISSING)
        if found is not MISSING:
            return found
        found = self._find_row(key)
        if len(self._recent_rows) >= RECENT_DOCS:
            self._recent_rows.clear()
        self._recent_rows[key] = found
        return found

    def _find_row(self, key: DocKey) -> int | None:
        wanted = hash(key)
        at = int(np.searchsorted(self._hashes, wanted))
        ids = self._texts["id"]
        while at < self._rows and self._hashes[at] == wanted:
            row = int(self._order[at])
            if ids.get(row) == key[1]:
                return row
            at += 1
        return None

    def key_of_row(self, row: int) -> DocKey:
        return ("incident", self._texts["id"].get(row))

    def _from_row(self, row: int) -> DocInfo:
        from search.state import DocInfo

        coded = self._coded_lists
        values = {name: values[column[row]] for name, column, values in coded}
        texts = self._texts
        return DocInfo(
            kind="incident",
            id=texts["id"].get(row),
            title=texts["title"].get(row),
            audience="internal",
            updated=texts["updated"].get(row),
            review_by="",
            **values,
        )

    def __getitem__(self, key: DocKey) -> DocInfo:
        if key in self._overlay:
            doc = self._overlay[key]
            if doc is None:
                raise KeyError(key)
            return doc
        if key[0] != "incident":
            return self._articles[key]
        doc = self._recent.get(key)
        if doc is not None:
            return doc
        row = self.row_of(key)
        if row is None:
            raise KeyError(key)
        doc = self._from_row(row)
        if len(self._recent) >= RECENT_DOCS:
            self._recent.clear()
        self._recent[key] = doc
        return doc

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        if key in self._overlay:
            return self._overlay[key] is not None
        if key[0] != "incident":
            return key in self._articles
        return key in self._recent or self.row_of(key) is not None

    def __len__(self) -> int:
        live_overlay = sum(
            1 for k, d in self._overlay.items() if d is not None and k[0] == "incident"
        )
        return self._rows - self._dropped + live_overlay + len(self._articles)

    def __iter__(self) -> Iterator[DocKey]:
        yield from self._articles
        for row in range(self._rows):
            key = self.key_of_row(row)
            if key not in self._overlay:
                yield key
        for key, doc in list(self._overlay.items()):
            if doc is not None and key[0] == "incident":
                yield key

    def items(self) -> Iterator[tuple[DocKey, DocInfo]]:  # type: ignore[override]
        yield from self._articles.items()
        for row in range(self._rows):
            key = self.key_of_row(row)
            if key not in self._overlay:
                yield key, self._from_row(row)
        for key, doc in list(self._overlay.items()):
            if doc is not None and key[0] == "incident":
                yield key, doc

    def values(self) -> Iterator[DocInfo]:  # type: ignore[override]
        for _, doc in self.items():
            yield doc

    def distinct(self, field: str) -> set[str]:
        """The distinct non-empty values of a field, without visiting every document."""
        found = {getattr(d, field) for d in self._articles.values()}
        if field in self._codes:
            used = np.unique(self._columns[field]) if self._rows else []
            found.update(self._codes[field].values[int(c)] for c in used)
        else:
            found.update(getattr(d, field) for _, d in self.items())
        found.update(getattr(d, field) for d in self._overlay.values() if d is not None)
        found.discard("")
        return found

    def code_counts(self, field: str) -> dict[str, int]:
        """How many base incidents hold each non-empty value of a coded field (the
        overlay is counted by its owner as it changes)."""
        counts = np.bincount(self._columns[field], minlength=len(self._codes[field].values))
        values = self._codes[field].values
        return {
            values[c]: int(n)
            for c in np.flatnonzero(counts).tolist()
            if values[c]
            for n in [counts[c]]
        }

    def kind_counts(self) -> dict[str, int]:
        incidents = len(self) - len(self._articles)
        return {"article": len(self._articles), "incident": incidents}

    # --- changes ----------------------------------------------------------------------

    def put(self, doc: DocInfo) -> None:
        if doc.kind != "incident":
            self._articles[doc.key] = doc
            return
        self._hide_base(doc.key)
        self._overlay[doc.key] = doc

    def pop(self, key: DocKey, default=None):  # type: ignore[override]
        if key[0] != "incident":
            return self._articles.pop(key, default)
        try:
            old = self[key]
        except KeyError:
            return default
        self._hide_base(key)
        self._overlay[key] = _DELETED
        return old

    def _hide_base(self, key: DocKey) -> None:
        self._recent.pop(key, None)
        if key not in self._overlay and self.row_of(key) is not None:
            self._dropped += 1


class ChunkDocs(Mapping):
    """The document of each chunk: sorted chunk ids and, for each, a row of a DocTable
    (or of the table's extra keys, for chunks of documents it does not hold)."""

    def __init__(self, pairs: Iterable[tuple[int, DocKey]], docs: DocTable):
        self._docs = docs
        ids = array("q")
        rows = array("i")
        self._extra_keys: list[DocKey] = []
        extra_index: dict[DocKey, int] = {}
        for cid, key in pairs:
            row = docs.row_of(key)
            if row is None:
                if key not in extra_index:
                    extra_index[key] = len(self._extra_keys)
                    self._extra_keys.append(key)
                row = -1 - extra_index[key]
            ids.append(cid)
            rows.append(row)
        chunk_ids = np.frombuffer(ids, dtype=np.int64) if len(ids) else np.zeros(0, dtype=np.int64)
        chunk_rows = (
            np.frombuffer(rows, dtype=np.int32) if len(rows) else np.zeros(0, dtype=np.int32)
        )
        order = np.argsort(chunk_ids, kind="stable")
        self._ids = chunk_ids[order]
        self._rows = chunk_rows[order]
        # Chunk ids are nearly consecutive: where they are, a chunk's row is found by its
        # offset from the first id (4 bytes per id in the range) instead of a search.
        self._dense: memoryview | None = None
        self._first_id = int(self._ids[0]) if len(self._ids) else 0
        span = int(self._ids[-1]) - self._first_id + 1 if len(self._ids) else 0
        if 0 < span <= 2 * len(self._ids) + 1024:
            dense = np.full(span, NO_ROW, dtype=np.int32)
            dense[self._ids - self._first_id] = self._rows
            self._dense_array = dense
            self._dense = memoryview(dense).cast("B").cast("i")
        self._overlay: dict[int, DocKey | None] = {}
        self._count = len(self._ids)
        self._first: dict[DocKey, int] | None = None

    def _base(self, cid: int) -> DocKey | None:
        dense = self._dense
        if dense is not None:
            at = cid - self._first_id
            if at < 0 or at >= len(dense):
                return None
            row = dense[at]
            if row == NO_ROW:
                return None
        else:
            at = int(np.searchsorted(self._ids, cid))
            if at >= len(self._ids) or int(self._ids[at]) != cid:
                return None
            row = int(self._rows[at])
        return self._docs.key_of_row(row) if row >= 0 else self._extra_keys[-1 - row]

    def __getitem__(self, cid: int) -> DocKey:
        cid = int(cid)
        if cid in self._overlay:
            key = self._overlay[cid]
        else:
            key = self._base(cid)
        if key is None:
            raise KeyError(cid)
        return key

    def __contains__(self, cid: object) -> bool:
        try:
            self[int(cid)]  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError):
            return False
        return True

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[int]:
        for cid in self._ids.tolist():
            if cid not in self._overlay:
                yield cid
        for cid, key in list(self._overlay.items()):
            if key is not None:
                yield cid

    def items(self) -> Iterator[tuple[int, DocKey]]:  # type: ignore[override]
        for cid in self:
            yield cid, self[cid]

    def set(self, cid: int, key: DocKey) -> None:
        cid = int(cid)
        if cid not in self:
            self._count += 1
        self._overlay[cid] = key
        self._first = None

    def pop(self, cid: int, default=None):  # type: ignore[override]
        cid = int(cid)
        try:
            old = self[cid]
        except KeyError:
            return default
        self._count -= 1
        self._overlay[cid] = None
        self._first = None
        return old

    def first_chunk(self, key: DocKey) -> int | None:
        """The lowest chunk id of a document."""
        if self._first is None:
            first: dict[DocKey, int] = {}
            for cid, doc in self._overlay.items():
                if doc is not None and (doc not in first or cid < first[doc]):
                    first[doc] = cid
            self._first = first
        best = self._first.get(key)
        row = self._docs.row_of(key)
        if row is None and key in self._extra_keys:
            row = -1 - self._extra_keys.index(key)
        if row is not None:
            for at in np.flatnonzero(self._rows == row).tolist():
                cid = int(self._ids[at])
                if cid not in self._overlay:
                    best = cid if best is None else min(best, cid)
                    break
        return best
