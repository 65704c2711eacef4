"""``GET /search``: BM25 ranking over the whole catalog, held in memory.

The ranking deliberately scans every product (no inverted index): its CPU grows with the
catalog, a few ms to tens of ms per query at 20,000 products, and it is deterministic
(ties broken by product id), so CPU per call is a stable, designed cost.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

K1 = 1.2
B = 0.75
NAME_BOOST = 3
MAX_TERMS = 8

_WORD = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclass(frozen=True, slots=True)
class _Doc:
    product_id: int
    name: str
    terms: Mapping[str, int]  # term -> frequency, name terms counted NAME_BOOST times
    norm: float  # BM25 length normalisation, K1 * (1 - B + B * length / average length)


class SearchIndex:
    """Read-only after construction; safe to share between server threads."""

    def __init__(self, rows: Iterable[Mapping[str, Any]]) -> None:
        parsed: list[tuple[int, str, Counter[str]]] = []
        doc_freq: Counter[str] = Counter()
        for row in rows:
            terms = Counter(tokenize(row["description"]))
            for term in tokenize(row["name"]):
                terms[term] += NAME_BOOST
            parsed.append((int(row["id"]), row["name"], terms))
            doc_freq.update(terms.keys())
        total = len(parsed)
        avg_length = sum(t.total() for _, _, t in parsed) / total if total else 1.0
        self._docs = [
            _Doc(pid, name, terms, K1 * (1 - B + B * terms.total() / avg_length))
            for pid, name, terms in parsed
        ]
        self._idf = {
            term: math.log(1 + (total - df + 0.5) / (df + 0.5)) for term, df in doc_freq.items()
        }

    def __len__(self) -> int:
        return len(self._docs)

    def search(self, query: str, limit: int = 10) -> list[dict[str, object]]:
        """The ``limit`` best products for ``query`` as ``{id, name, score}``, best first."""
        terms = [t for t in dict.fromkeys(tokenize(query)) if t in self._idf][:MAX_TERMS]
        if not terms:
            return []
        scored = ((self._score(doc, terms), -doc.product_id, doc) for doc in self._docs)
        best = heapq.nlargest(limit, (item for item in scored if item[0] > 0))
        return [
            {"id": doc.product_id, "name": doc.name, "score": round(score, 4)}
            for score, _, doc in best
        ]

    def _score(self, doc: _Doc, terms: list[str]) -> float:
        score = 0.0
        for term in terms:
            tf = doc.terms.get(term, 0)
            if tf:
                score += self._idf[term] * tf * (K1 + 1) / (tf + doc.norm)
        return score
