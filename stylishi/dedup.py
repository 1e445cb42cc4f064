"""Near-duplicates folded into one result: the best of each group is shown, with how many it stands for.

Two candidates are the same product for a shopper when any of these holds (checked against each result already
kept, best first, so the best-scoring member of a group is the one shown):
- the same picture: byte-identical thumbnails (one product listed under two ids);
- vectors at least `threshold` apart in cosine (default `DEFAULT_THRESHOLD`, `STYLISHI_DEDUP_THRESHOLD`);
- the same value in a product-group column of the metadata (`GROUP_COLUMNS`), when the catalog has one.

The search asks the index for `FETCH_FACTOR` × k candidates so that k results remain after folding (and more, up to
`WIDE_FACTOR` × k, when a page of candidates folded below k); `folded` counts the near-duplicates among the
candidates fetched, so "+2 similar" on a card is a lower bound, never a guess.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

import numpy as np

# Cosine at or above which two items are one product. Measured on the offline demo's retrained tiny CLIP
# (DEMO_VERSION 3): a catalog picture re-saved as a smaller JPEG embeds at 0.9969–1.0 of its stored vector (median
# 0.9998), while the closest two distinct demo items sit at 0.9959; so 0.9995 folds identical pictures and most
# re-saved copies, and never two distinct demo items. A full-size CLIP spreads a catalog wider: lower it
# (STYLISHI_DEDUP_THRESHOLD) to fold re-shot products too.
DEFAULT_THRESHOLD = 0.9995
GROUP_COLUMNS = ("product_group", "group_id")  # the first one the catalog has is used
FETCH_FACTOR = 3
WIDE_FACTOR = 12


@dataclass(frozen=True)
class Kept:
    """One result after folding: its catalog row and score, and the rows folded into it (best first)."""

    row: int
    score: float
    folded: tuple[int, ...] = ()


def fold(rows: Sequence[int], scores: Sequence[float], vectors: np.ndarray, *, threshold: float,
         pictures: Sequence[Hashable | None] | None = None, groups: Sequence[Hashable | None] | None = None,
         k: int | None = None, hidden: int = 0) -> list[Kept]:
    """Candidates (best first) → at most k kept results, each with the near-duplicates folded into it.

    A candidate joins the first kept result it duplicates; otherwise it is kept while fewer than k are, and dropped
    after that (it is not shown, and no card claims it). `pictures` and `groups` hold one key per candidate, None for
    "unknown" (a missing picture or group never makes two items the same). The first `hidden` candidates are items
    the shopper already has (the item of "more like this", the liked and disliked ones): never shown, and their
    near-duplicates are dropped with them (the same product under another id is not a new result).
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    kept: list[int] = list(range(min(hidden, len(rows))))  # candidate positions; the hidden ones first
    folded: dict[int, list[int]] = {j: [] for j in kept}
    for i in range(len(kept), len(rows)):
        home = next((j for j in kept if _same(i, j, vectors, threshold, pictures, groups)), None)
        if home is not None:
            folded[home].append(int(rows[i]))
        elif k is None or len(kept) - hidden < k:
            kept.append(i)
            folded[i] = []
    return [Kept(int(rows[j]), float(scores[j]), tuple(folded[j])) for j in kept if j >= hidden]


def _same(i: int, j: int, vectors: np.ndarray, threshold: float, pictures, groups) -> bool:
    for keys in (pictures, groups):
        if keys is not None and keys[i] is not None and keys[i] == keys[j]:
            return True
    return float(vectors[i] @ vectors[j]) >= threshold


def picture_keys(catalog: Any, rows: Sequence[int]) -> list[str | None]:
    """A digest of each row's stored thumbnail (None when it has none: a missing picture matches nothing)."""
    column = catalog.thumbnails.column("jpeg")
    out: list[str | None] = []
    for row in rows:
        data = column[int(row)].as_py()
        out.append(hashlib.blake2b(data, digest_size=16).hexdigest() if data else None)
    return out


def group_keys(items: Any, rows: Sequence[int]) -> list[str | None] | None:
    """Each row's product group, from the first of GROUP_COLUMNS the catalog has (None: it has none)."""
    column = next((c for c in GROUP_COLUMNS if c in items.columns), None)
    if column is None:
        return None
    values = items[column].to_numpy()
    return [_key(values[int(r)]) for r in rows]


def _key(value: Any) -> str | None:
    import pandas as pd

    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def parse_flag(value: Any) -> bool:
    """The API's `dedup` as a program sends it: true/false (also "true"/"false", 1/0, "yes"/"no"); omitted = on."""
    if value is None or value == "":
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
        return value.strip().lower() in ("true", "1", "yes", "on")
    from .errors import QueryError

    raise QueryError("dedup must be true (fold near-duplicates, the default) or false (show every item).")
