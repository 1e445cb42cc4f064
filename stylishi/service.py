"""The search service: a picture, a text or a catalog item in; ranked, scored products and stage timings out.

Data flows one way: image → vector → neighbours → results. Nothing here knows about any UI.
`load` is the one way to open a service, and `check_compatible` the one place that decides whether a model fits an
index: every caller (the package's `stylishi.load`, the start-up policy, the builder's self-check) goes through it.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from . import calibration, dedup as dedup_mod, families, feedback, focus as focus_mod, look, modifiers, region
from .catalog import FILTERABLE, Catalog
from .config import Limits, dedup_threshold as default_dedup_threshold
from .embedder import Embedder
from .errors import ArtifactError, ModelMismatchError, QueryError, StyliShiError
from .images import ImageInput, load_image
from .metrics import Metrics, log_query
from .results import SearchResponse, SearchResult
from .store import Selection

log = logging.getLogger(__name__)

Filters = Mapping[str, "str | Sequence[str] | None"]


class SearchService:
    """Holds one embedder and one catalog; every method is safe to call from several threads."""

    def __init__(self, embedder: Embedder, catalog: Catalog, limits: Limits | None = None, *,
                 source: str = "", notice: str | None = None, dedup_threshold: float | None = None):
        check_compatible(catalog.manifest, embedder, root=catalog.root)
        self.embedder = embedder
        self.catalog = catalog
        self.limits = limits or Limits()
        self.source = source or str(catalog.root)  # what was asked for: a folder or owner/name@rev
        self.notice = notice  # a line for people when this is not the index they asked for (demo, starter, cache)
        self.startup = None  # stylishi.startup.StartupReport: what was tried at start-up (set by open_service)
        self._filter_values = catalog.filter_values()
        self._lower_columns = {col: catalog.items[col].astype(str).str.lower().to_numpy() for col in self._filter_values}
        self._canonical = {col: {v.lower(): v for v in values} for col, values in self._filter_values.items()}
        # "Like this, but …": the values the words may name (filterable columns, and others such as `pattern`
        # that the store cannot filter on: those are boosts, applied here on the nearest items)
        boostable = [c for c in modifiers.MODIFIER_COLUMNS if c not in self._filter_values and c in catalog.items]
        self._boost_columns = {c: catalog.items[c].astype(str).str.lower().to_numpy() for c in boostable}
        self.vocabulary = modifiers.Vocabulary.of(
            {**self._filter_values, **{c: sorted({str(v) for v in catalog.items[c].dropna() if str(v).strip()})
                                      for c in boostable}})
        self.metrics = Metrics()  # every query and refusal, for the stats view; see stylishi.metrics
        # raw cosine → chance of the query's article type, by query kind ({} for an index without one: raw % shown)
        self.calibration = calibration.from_manifest(catalog.manifest)
        # results at least this close (cosine) are one product, folded into one card (default STYLISHI_DEDUP_THRESHOLD)
        self.dedup_threshold = float(dedup_threshold) if dedup_threshold is not None else default_dedup_threshold()
        # Shop the look's detector, loaded on first use (stylishi.look); start-up sets it from STYLISHI_DETECTOR.
        self.looker = look.Looker(look.choose_detector("auto", serving_demo=look.is_demo_catalog(catalog.manifest)))
        # Photo searches focused on their main garment (stylishi.focus), where the detector is cheap enough.
        self.focus = focus_mod.Focus(self.looker, focus_mod.choose_focus("auto", self.looker.choice))

    # -- public surface: each call is counted in self.metrics and logged as one "stylishi.query" line ----------
    # `dedup` (default on): near-duplicates are folded into the best of them (stylishi.dedup); off shows them all.
    def search_image(self, image: ImageInput, k: int = 10, filters: Filters | None = None, *,
                     box: Any = None, text: str | None = None, text_weight: float | None = None,
                     dedup: bool = True) -> SearchResponse:
        """Search by picture. `box`: only this region of it, [x0, y0, x1, y1] as fractions of its width and height
        (stylishi.region). `text`: "like this, but …" words (stylishi.modifiers): values of the catalog they name
        filter (or boost), negated ones exclude, the rest is added to the picture's vector at `text_weight`
        (default modifiers.DEFAULT_WEIGHT). How the text was read is the response's `reading`."""
        chars = len(str(text)) if text else None
        return self._observed("image", k, filters, lambda: self._search_image(image, k, filters, box, text,
                                                                              text_weight, dedup), text_chars=chars)

    def read_modifier(self, text: str | None, text_weight: float | None = None) -> modifiers.Reading | None:
        """How "like this, but …" words read against this catalog (None for no words: a plain picture search)."""
        if text is not None and not isinstance(text, str):
            raise QueryError("The words with the photo must be text, e.g. “in blue” or “not black”.")
        if not text or not text.strip():
            modifiers.check_weight(text_weight)
            return None
        return modifiers.read(text, self.vocabulary, weight=text_weight, filterable=self._filter_values,
                              max_chars=self.limits.max_text_chars)

    def search_text(self, text: str, k: int = 10, filters: Filters | None = None, *,
                    dedup: bool = True) -> SearchResponse:
        chars = len(str(text)) if text is not None else 0  # the length only: what people type is never logged
        return self._observed("text", k, filters, lambda: self._search_text(text, k, filters, dedup),
                              text_chars=chars)

    def search_item(self, item_id: str, k: int = 10, filters: Filters | None = None, *,
                    dedup: bool = True) -> SearchResponse:
        """More like this: search with an item's own stored vector."""
        return self._observed("item", k, filters, lambda: self._search_item(item_id, k, filters, dedup))

    def search_vector(self, vector: np.ndarray, k: int = 10, filters: Filters | None = None, *,
                      text: str | None = None, text_weight: float | None = None,
                      dedup: bool = True) -> SearchResponse:
        """Search by a picture's vector (e.g. a response's `picture_vector`), with "like this, but …" words as
        in search_image."""
        chars = len(str(text)) if text else None
        return self._observed("vector", k, filters, lambda: self._search_vector(vector, k, filters, text,
                                                                                text_weight, dedup), text_chars=chars)

    def refine(self, positive_ids: Any, negative_ids: Any = None, k: int = 10, filters: Filters | None = None, *,
               query_vector: np.ndarray | None = None, dedup: bool = True) -> SearchResponse:
        """👍 / 👎: the query moved toward the liked items and away from the disliked ones (stylishi.feedback).

        `query_vector` is the query being refined (`SearchResponse.vector` of the search on screen); without it the
        search starts from the liked items alone. Ids are a list, JSON list text or comma-separated text; neither
        the liked nor the disliked items are returned.
        """
        return self._observed("refine", k, filters,
                              lambda: self._refine(positive_ids, negative_ids, k, filters, query_vector, dedup))

    def shop_the_look(self, image: ImageInput, k: int = 5, filters: Filters | None = None, *,
                      dedup: bool = True) -> look.LookResponse:
        """Every garment found in the picture (stylishi.look), each with the catalog searched by its region."""
        return look.shop_the_look(self, self.looker, image, k, filters=filters, dedup=dedup)

    @property
    def filter_values(self) -> dict[str, list[str]]:
        return self._filter_values

    # -- the searches ----------------------------------------------------------------------------------------
    def _search_image(self, image: ImageInput, k: int, filters: Filters | None, box: Any = None,
                      text: str | None = None, text_weight: float | None = None,
                      dedup: bool = True) -> SearchResponse:
        t0 = time.perf_counter()
        box = region.parse_box(box)
        reading = self.read_modifier(text, text_weight)
        allowed = self._allowed_with(filters, reading)
        k = self._check_k(k)
        picture = region.crop(load_image(image, self.limits), box)
        t_detect = time.perf_counter()
        # A region the shopper drew is searched as drawn; otherwise the main garment too, when focus is on.
        detects = box is None and self.focus.on
        views, focused = self.focus.views(picture) if detects else ([picture], None)
        t_detected = time.perf_counter()
        pixels = self.embedder.preprocess(views)
        t1 = time.perf_counter()
        vector, focused = focus_mod.query_vector(self, self.embedder.embed_pixels(pixels), focused)
        t2 = time.perf_counter()
        stages = {"preprocess": t1 - t0 - (t_detected - t_detect), "embed": t2 - t1}
        if detects:
            stages["detect"] = t_detected - t_detect
        response = self._like_this(vector, k, allowed, reading, filters, "image", t0, stages, box, dedup)
        response.focus = focused
        return response

    def _like_this(self, picture_vector: np.ndarray, k: int, allowed: Selection | None,
                   reading: modifiers.Reading | None, filters: Filters | None, kind: str, t0: float,
                   stages: dict[str, float], box: region.Box | None = None, dedup: bool = True) -> SearchResponse:
        """A picture's vector, changed by the words (if any), searched; the response records how."""
        t = time.perf_counter()
        vector = self._modified(picture_vector, reading)
        reading = self._keep_kind(picture_vector, reading, filters)
        stages["embed"] += time.perf_counter() - t  # the text tower and the kind vote
        response = self._finish(vector, k, allowed, kind, t0, stages, dedup=dedup, reading=reading)
        response.reading, response.box = reading, box.as_list() if box else None
        response.picture_vector = np.asarray(picture_vector, dtype=np.float32).reshape(-1)
        return response

    def _modified(self, vector: np.ndarray, reading: modifiers.Reading | None) -> np.ndarray:
        """The picture's vector with the rest of the words added and the negated ones taken away, at the weight."""
        if reading is None or not (reading.rest or reading.away) or reading.weight == 0:
            return vector
        w = reading.weight
        texts = [t for t in (reading.rest, reading.away) if t]
        embedded = dict(zip(texts, self.embedder.embed_texts(texts)))
        combined = (1 - w) * vector.reshape(-1)
        if reading.rest:
            combined = combined + w * embedded[reading.rest]
        if reading.away:
            combined = combined - w * embedded[reading.away]
        norm = float(np.linalg.norm(combined))
        return vector if norm < 1e-6 else (combined / norm).astype(np.float32).reshape(1, -1)

    def _search_text(self, text: str, k: int, filters: Filters | None, dedup: bool) -> SearchResponse:
        t0 = time.perf_counter()
        allowed = self._allowed(filters)
        k = self._check_k(k)
        text = " ".join(str(text or "").split())
        if not text:
            raise QueryError("Type a few words describing what you look for, e.g. “red floral summer dress”.")
        if len(text) > self.limits.max_text_chars:
            raise QueryError(f"That description is {len(text)} characters long; please keep it to at most "
                             f"{self.limits.max_text_chars} characters.")
        t1 = time.perf_counter()
        vector = self.embedder.embed_texts([text])
        t2 = time.perf_counter()
        return self._finish(vector, k, allowed, "text", t0, {"preprocess": t1 - t0, "embed": t2 - t1},
                            dedup=dedup)

    def _search_item(self, item_id: str, k: int, filters: Filters | None, dedup: bool) -> SearchResponse:
        t0 = time.perf_counter()
        allowed = self._allowed(filters)
        k = self._check_k(k)
        if item_id is None or not str(item_id).strip():
            raise QueryError("Give the id of a catalog item: the `id` of a search result.")
        row = self.catalog.row_of(str(item_id).strip())
        if row is None:
            raise QueryError(f"There is no item with id {str(item_id)[:80]!r} in this catalog.")
        vector = self.catalog.store.vectors(np.array([row]))  # FAISS in process, or fetched from Milvus
        vector /= max(float(np.linalg.norm(vector)), 1e-12)
        # The clicked item itself is left out: it would always be its own first match.
        return self._finish(vector, k, allowed, "item", t0, {"preprocess": 0.0, "embed": time.perf_counter() - t0},
                            exclude=(row,), dedup=dedup)

    def _search_vector(self, vector: np.ndarray, k: int, filters: Filters | None, text: str | None = None,
                       text_weight: float | None = None, dedup: bool = True) -> SearchResponse:
        t0 = time.perf_counter()
        reading = self.read_modifier(text, text_weight)
        allowed = self._allowed_with(filters, reading)
        k = self._check_k(k)
        vector = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        if vector.shape[1] != self.catalog.dim:
            raise QueryError(f"The vector has {vector.shape[1]} dimensions; this catalog uses {self.catalog.dim}.")
        return self._like_this(vector, k, allowed, reading, filters, "vector", t0, {"preprocess": 0.0, "embed": 0.0},
                               dedup=dedup)

    def _refine(self, positive_ids: Any, negative_ids: Any, k: int, filters: Filters | None,
                query_vector: np.ndarray | None, dedup: bool) -> SearchResponse:
        t0 = time.perf_counter()
        allowed = self._allowed(filters)
        k = self._check_k(k)
        liked = feedback.parse_ids(positive_ids, "positive_ids (the liked items)")
        disliked = feedback.parse_ids(negative_ids, "negative_ids (the disliked items)")
        if not liked and not disliked:
            raise QueryError("Nothing to refine with: give the ids of the results you like (positive_ids) and/or "
                             f"dislike (negative_ids), e.g. {feedback.EXAMPLE_IDS}.")
        both = [i for i in liked if i in set(disliked)]
        if both:
            raise QueryError(f"{feedback.quoted(both)} cannot be both liked and disliked: keep each id in one list.")
        unknown = [i for i in liked + disliked if self.catalog.row_of(i) is None]
        if unknown:
            raise QueryError(f"This catalog has no item with the id{'s' if len(unknown) > 1 else ''} "
                             f"{feedback.quoted(unknown)}: use the `id` of search results.")
        query = None
        if query_vector is not None:
            query = np.asarray(query_vector, dtype=np.float32).reshape(-1)
            if query.shape[0] != self.catalog.dim:
                raise QueryError(f"The query vector has {query.shape[0]} dimensions; this catalog uses "
                                 f"{self.catalog.dim}.")
        if query is None and not liked:
            raise QueryError("With only disliked items there is nothing to search for: like (👍) at least one item, "
                             "or refine a search (send its query vector).")
        liked_rows = [self.catalog.row_of(i) for i in liked]
        disliked_rows = [self.catalog.row_of(i) for i in disliked]
        stored = self.catalog.store.vectors(np.array(liked_rows + disliked_rows, dtype=np.int64))
        vector = feedback.rocchio(query, stored[:len(liked_rows)], stored[len(liked_rows):])
        if vector is None:
            raise QueryError("The liked and disliked items cancel each other out: like or dislike other items, or "
                             "start over.")
        return self._finish(vector, k, allowed, "refine", t0, {"preprocess": 0.0, "embed": time.perf_counter() - t0},
                            exclude=tuple(liked_rows + disliked_rows), dedup=dedup)

    # -- machinery -----------------------------------------------------------------------------------------
    def _finish(self, vector: np.ndarray, k: int, allowed: Selection | None, kind: str, t0: float,
                stages: dict[str, float], exclude: Sequence[int] = (), dedup: bool = True,
                reading: modifiers.Reading | None = None) -> SearchResponse:
        """Search the index and turn the top k rows into results. `exclude`: rows never returned (the item a "more
        like this" started from, the items given as feedback), so that many more are asked of the index. With
        `dedup`, FETCH_FACTOR × as many candidates are asked for and near-duplicates folded (stylishi.dedup). A
        reading's boosts reorder a larger pool of nearest items (BOOST_POOL × k)."""
        dedup = dedup_mod.parse_flag(dedup)  # a bool from Python; true/false text from a form (stylishi_ui.rest)
        t_search = time.perf_counter()
        kept, t_format = self._search_kept(vector, k, allowed, set(exclude), dedup, self._boosts(reading))
        fit = self.calibration.get("text" if kind == "text" else "image")
        scores = [h.score for h in kept]
        matches = (fit.probability(scores) if fit else np.clip(scores, 0.0, 1.0)) * 100 if kept else []
        results = [self._result(rank, h.row, h.score, float(match), h.folded)
                   for rank, (h, match) in enumerate(zip(kept, matches), start=1)]
        t_end = time.perf_counter()
        timings = {**{k_: round(v * 1000, 3) for k_, v in stages.items()},
                   "search": round((t_format - t_search) * 1000, 3),
                   "format": round((t_end - t_format) * 1000, 3),
                   "total": round((t_end - t0) * 1000, 3)}
        return SearchResponse(results=results, timings_ms=timings, catalog_size=len(self.catalog), query=kind,
                              vector=np.asarray(vector, dtype=np.float32).reshape(-1), calibrated=fit is not None,
                              dedup=bool(dedup), folded=sum(r.folded for r in results))

    def _search_kept(self, vector: np.ndarray, k: int, allowed: Selection | None, exclude: set[int], dedup: bool,
                     boosts=None) -> tuple[list[dedup_mod.Kept], float]:
        """The top k rows (less `exclude`), near-duplicates folded when `dedup`; and when formatting began.
        `boosts` (row → rank group, lower first) reorders the nearest BOOST_POOL × k before anything is cut."""
        store, want = self.catalog.store, k + len(exclude)
        if boosts:
            want = max(want, k * BOOST_POOL)
        factors = (dedup_mod.FETCH_FACTOR, dedup_mod.WIDE_FACTOR) if dedup else (1,)
        for factor in factors:
            fetch = min(want * factor, len(store))
            scores, rows = store.search(vector, fetch, allowed)
            t_format = time.perf_counter()
            hits = [(int(r), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0 and int(r) not in exclude]
            if boosts:
                hits.sort(key=lambda hit: boosts(hit[0]))  # stable: nearest first within each group
            if not dedup:
                return [dedup_mod.Kept(r, s) for r, s in hits[:k]], t_format
            # The excluded items go first, hidden: their near-duplicates are not new results either.
            rows_ = sorted(exclude) + [r for r, _ in hits]
            scores_ = [1.0] * len(exclude) + [s for _, s in hits]
            kept = dedup_mod.fold(rows_, scores_, store.vectors(np.array(rows_, dtype=np.int64))
                                  if rows_ else np.zeros((0, self.catalog.dim), np.float32),
                                  threshold=self.dedup_threshold,
                                  pictures=dedup_mod.picture_keys(self.catalog, rows_),
                                  groups=dedup_mod.group_keys(self.catalog.items, rows_), k=k, hidden=len(exclude))
            # Enough kept, or the index had no more to give: done. Else a wider page of candidates.
            if len(kept) >= k or int((rows[0] >= 0).sum()) < fetch or fetch >= len(store):
                break
        return kept, t_format

    def _observed(self, kind: str, k: Any, filters: Filters | None, search, *, text_chars: int | None = None
                  ) -> SearchResponse:
        """Run one search; count it (or its refusal) in self.metrics and log one line about it."""
        t0 = time.perf_counter()
        k_logged = k if isinstance(k, int) and not isinstance(k, bool) else None
        try:
            response = search()
        except Exception as exc:
            ms = (time.perf_counter() - t0) * 1000
            error = type(exc).__name__ if isinstance(exc, StyliShiError) else "InternalError"
            self.metrics.record_error(kind, ms, error)
            log_query(kind, ok=False, k=k_logged, total_ms=ms, error=error, text_chars=text_chars)
            raise
        top = response.results[0].score if response.results else None
        self.metrics.record(kind, response.timings_ms["total"], top_score=top, results=len(response.results))
        log_query(kind, ok=True, k=k_logged, timings_ms=response.timings_ms, filters=self._canonical_filters(filters),
                  results=len(response.results), top_score=top, text_chars=text_chars)
        return response

    def _keep_kind(self, vector: np.ndarray, reading: modifiers.Reading | None, filters: Filters | None
                   ) -> modifiers.Reading | None:
        """When the words change something else ("in blue"), the results stay of the picture's kind: the article
        type most of the picture's nearest items have is boosted (recorded in the reading as a "keep" term).
        Not when the words or the filters name a kind themselves."""
        if reading is None or not reading.terms or "article_type" not in self._filter_values:
            return reading
        named = {t.column for t in reading.terms} | {c for c, _ in _filter_items(filters)}
        if named & KIND_COLUMNS:
            return reading
        _, rows = self.catalog.store.search(vector, KIND_VOTES, None)
        kinds = [str(self.catalog.items["article_type"].iat[int(r)]) for r in rows[0] if r >= 0]
        if not kinds:
            return reading
        kind = Counter(kinds).most_common(1)[0][0]  # a tie goes to the nearest item's kind
        return replace(reading, terms=(*reading.terms, modifiers.Term("", "article_type", kind, "keep")))

    def _boosts(self, reading: modifiers.Reading | None):
        """row → 0 / -1 per boosted value it has / +1 per demoted one (lower first), or None without boosts."""
        if reading is None:
            return None
        up, down = reading.values("boost"), reading.values("demote")
        for column, values in reading.values("keep").items():
            up.setdefault(column, []).extend(values)
        if not (up or down):
            return None
        columns = {**self._lower_columns, **self._boost_columns}
        lowered = [(columns[c], {v.lower() for v in vs}, sign)
                   for sign, named in ((-1, up), (1, down)) for c, vs in named.items()]
        return lambda row: sum(sign for column, values, sign in lowered if column[row] in values)

    def _allowed_with(self, filters: Filters | None, reading: modifiers.Reading | None) -> Selection | None:
        """The filters, narrowed by the values the words named (filter) and excluded (exclude): within a column,
        the named values that the filter also allows, less the excluded ones."""
        allowed = self._allowed(filters)  # refuses a bad filter first, with its own message
        named, unwanted = (reading.values("filter"), reading.values("exclude")) if reading else ({}, {})
        if not (named or unwanted):
            return allowed
        merged = dict(_filter_items(filters))
        for column in dict.fromkeys([*named, *unwanted]):
            keep = ({v.lower() for v in named.get(column, self._filter_values[column])}
                    - {v.lower() for v in unwanted.get(column, ())})
            if column in merged:
                keep &= set(merged[column])
            if not keep:  # nothing can match ("in red" with the colour filter Blue): an empty selection
                return Selection(values={column: ()}, rows=np.empty(0, dtype=np.int64))
            merged[column] = sorted(keep)
        return self._allowed(merged)

    def _canonical_filters(self, filters: Filters | None) -> dict[str, list[str]]:
        """The filters of an answered query as catalog values (so the log holds nothing a person typed)."""
        out: dict[str, list[str]] = {}
        for column, values in _filter_items(filters):
            known = self._canonical.get(column, {})
            out[column] = sorted({known[v] for v in values if v in known})
        return out

    def _result(self, rank: int, row: int, score: float, match: float, folded: Sequence[int] = ()) -> SearchResult:
        item = self.catalog.items.iloc[row]
        metadata = {k: _plain(v) for k, v in item.items() if k not in ("id", "thumbnail") and _plain(v) is not None}
        return SearchResult(rank=rank, id=str(item["id"]), score=round(score, 6),
                            match=round(match, 1), name=str(metadata.get("name") or item["id"]),
                            category=str(metadata.get("category") or ""),
                            article_type=str(metadata.get("article_type") or ""),
                            colour=str(metadata.get("colour") or ""),
                            thumbnail=str(self.catalog.thumbnail_path(row)), metadata=metadata,
                            folded=len(folded), folded_ids=[str(self.catalog.items["id"].iat[r]) for r in folded])

    def _check_k(self, k: Any) -> int:
        try:
            if isinstance(k, float) and not k.is_integer():
                raise ValueError(k)
            k = int(k)
        except (TypeError, ValueError, OverflowError):
            raise QueryError(f"The number of results must be a whole number from 1 to {self.limits.max_k}.") from None
        if not 1 <= k <= self.limits.max_k:
            raise QueryError(f"The number of results must be from 1 to {self.limits.max_k}; got {k}.")
        return k

    def _allowed(self, filters: Filters | None) -> Selection | None:
        """The items that pass every filter (None = no filter), as canonical catalog values and as row ids.
        Values within a column are OR-ed, columns AND-ed; a value the catalog lacks is refused, never passed on."""
        if not filters:
            return None
        if not isinstance(filters, Mapping):
            raise QueryError('Filters must be an object such as {"gender": "Women", "colour": ["Red", "Blue"]}.')
        mask, chosen = None, {}
        for column, values in _filter_items(filters):
            if column not in self._filter_values:
                known = ", ".join(self._filter_values) or "none"
                raise QueryError(f"This catalog cannot be filtered by {str(column)[:40]!r}. Filters it has: {known}.")
            known_lower = self._canonical[column]
            unknown = [v for v in values if v not in known_lower]
            if unknown:
                examples = ", ".join(self._filter_values[column][:12])
                raise QueryError(f"No item has {column} {unknown[0][:40]!r}. Choose one of: {examples}.")
            col_mask = np.isin(self._lower_columns[column], values)
            mask = col_mask if mask is None else mask & col_mask
            wanted = set(values)  # every catalog spelling of a wanted value ("Red" and "red" alike), as stored
            chosen[column] = tuple(v for v in self._filter_values[column] if v.lower() in wanted)
        if mask is None:
            return None
        return Selection(values=chosen, rows=np.flatnonzero(mask).astype(np.int64))


def _filter_items(filters: Filters | None) -> list[tuple[str, list[str]]]:
    """(column, lower-cased wanted values) for each filter that narrows anything. "All", "" and None mean no filter.

    A value is a text (or a number) or a list of them; anything else is refused with a QueryError.
    """
    out = []
    for column, wanted in (filters or {}).items():
        if wanted is None or wanted == "" or wanted == [] or wanted == "All":
            continue
        values = [wanted] if _is_scalar(wanted) else wanted
        if not isinstance(values, (list, tuple)) or not all(v is None or _is_scalar(v) for v in values):
            raise QueryError(f"The filter {str(column)[:40]!r} must be a value or a list of values, e.g. "
                             '{"colour": ["Red", "Blue"]}.')
        values = [str(v).strip().lower() for v in values if v is not None and str(v).strip() and str(v) != "All"]
        if values:
            out.append((str(column), values))
    return out


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    """numpy/pandas scalars to JSON-friendly Python values; NaN/None to None."""
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, float) and np.isnan(value):
            return None
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
    except ImportError:  # pragma: no cover
        pass
    return value




# -- opening a service ----------------------------------------------------------------------------------------
# A model reproducing the index's own vectors at a lower median cosine than this is another model (same size,
# other weights): refused instead of silently returning unrelated products.
MIN_CATALOG_COSINE = 0.8
KIND_COLUMNS = {"article_type", "subcategory", "category"}  # words or filters naming one: the kind is not kept
KIND_VOTES = 5  # the picture's nearest items that say which kind it is (majority)
BOOST_POOL = 30  # a boost ("with stripes" where the store cannot filter by pattern) reorders the k × this nearest


def load(index: str | Path, model: str | None = None, *, device: str = "auto", mode: str | None = None,
         local_files_only: bool = False, source: str | None = None, notice: str | None = None) -> SearchService:
    """A ready search service for a catalog index (local folder, or Hub dataset repo `owner/name[@rev]`).

    The model defaults to the one the index was built with; naming another one is refused (ModelMismatchError)
    before anything is downloaded. local_files_only: take the index and model from the Hugging Face cache only,
    making no request (the Hub is away). `source` is what the service says it serves (default: `index`).
    """
    from . import catalog as catalog_mod
    from .config import Settings
    from .hub import resolve_index, resolve_model

    root = resolve_index(str(index), local_files_only=local_files_only)
    manifest = catalog_mod.read_manifest(root)
    check_compatible(manifest, model=model, root=root, source=source or str(index))
    model_dir, model_id, revision = resolve_model(model or manifest["model"]["id"], index_root=root,
                                                  local_files_only=local_files_only)
    catalog = catalog_mod.load(root)
    mode = mode or Settings().embed_mode
    gap = catalog.neighbour_gap() if mode in ("auto", "int8") else None
    embedder = Embedder.load(model_dir, model_id=model_id, revision=revision, device=device, mode=mode,
                             neighbour_gap=gap)
    service = SearchService(embedder, catalog, source=source or str(index), notice=notice)
    check_compatible(catalog.manifest, embedder, root=root, catalog=catalog)  # the right size, but the right weights?
    return service


def check_compatible(manifest: Mapping[str, Any], embedder: Embedder | None = None, *, model: str | None = None,
                     root: Path | None = None, catalog: Catalog | None = None, source: str | None = None
                     ) -> float | None:
    """Does this model fit this index? The only place that decides; raises with a message naming the fix.

    Each check runs as soon as its input is known, so a caller asks before loading anything, and again after:
    - `model`, the reference a person named (--model / STYLISHI_MODEL), against the model the manifest names:
      another model is a configuration error (ModelMismatchError), never a reason to serve something else;
    - `embedder`, a loaded model: its family (CLIP, SigLIP: manifest `model.family`) against the index's
      (ModelMismatchError), then its vector size (ArtifactError);
    - with `catalog` too: whether it reproduces the index's own stored vectors from their thumbnails, so a model of
      the right size but other weights is refused (ArtifactError). Returns the median cosine of that check (None when
      it did not run, e.g. an index without thumbnails).
    """
    built_with = str(manifest["model"]["id"])
    dim = int(manifest["embedding"]["dim"])
    family = families.of_manifest(manifest)
    where = root if root is not None else "the catalog index"
    if model and not same_model(model, built_with, root):
        asked_family = families.of_folder(model)
        kinds = (f" (a {families.label(family)} model)", f" (a {families.label(asked_family)} model)") \
            if asked_family and asked_family != family else ("", "")
        raise ModelMismatchError(
            f"The index {source or where} was built with the model {built_with}{kinds[0]}, but the model {model}"
            f"{kinds[1]} was asked for (--model / STYLISHI_MODEL). Its vectors only make sense with {built_with}: "
            f"drop --model (and unset STYLISHI_MODEL) to use it, or build an index with {model}.")
    if embedder is None:
        return None
    if embedder.family.name != family:
        raise ModelMismatchError(
            f"The index {source or where} was built with the {families.label(family)} model {built_with}, but the "
            f"loaded model {embedder.model_id} is a {embedder.family.label} model: its vectors live in another space. "
            f"Load {built_with}, or build an index with {embedder.model_id}.")
    if embedder.dim != dim:
        if same_model(embedder.model_id, built_with, root):
            raise ArtifactError(
                f"The catalog index {where} names the model {built_with}, which makes {embedder.dim}-d vectors, but "
                f"it holds {dim}-d vectors: it was built with another model. Rebuild the index with build_index.py.")
        raise ArtifactError(
            f"The catalog index {where} holds {dim}-d vectors from {built_with}, but the loaded model "
            f"{embedder.model_id} makes {embedder.dim}-d vectors. Load {built_with}, or rebuild the index with "
            "your model.")
    if catalog is None:
        return None
    from .fidelity import catalog_cosine

    median = catalog_cosine(embedder, catalog)
    if median is not None and median < MIN_CATALOG_COSINE:
        raise ArtifactError(
            f"The model {embedder.model_id} does not reproduce the vectors of the catalog index {catalog.root}: its "
            f"own pictures embed at a cosine of {median:.2f} to their stored vectors (at least {MIN_CATALOG_COSINE} "
            "expected). The index was built with another model: load the model it was built with, or rebuild the "
            "index with this one (build_index.py).")
    return median


def same_model(asked: str, built_with: str, root: Path | None = None) -> bool:
    """Whether a model reference names the model an index was built with (paths compared resolved; a Hub id's
    revision is ignored: the index records its own, and `resolve_model` fetches that one)."""
    def norm(ref: str) -> str:
        if ref.startswith("./") and root is not None:
            return str((Path(root) / ref).resolve())
        path = Path(ref).expanduser()
        return str(path.resolve()) if path.exists() else ref.split("@")[0]
    return norm(asked) == norm(built_with)


def encode(service: SearchService, images: Sequence) -> np.ndarray:
    """Unit vectors `[n, dim]` for pictures (paths, bytes, PIL or arrays), in the catalog's space."""
    return service.embedder.embed_images([load_image(img, service.limits) for img in images])


def search(service: SearchService, query, k: int = 10, filters: Filters | None = None) -> SearchResponse:
    """Search by picture (path/bytes/PIL/array), by text (a str that is not an existing file) or by vector."""
    if isinstance(query, np.ndarray) and query.ndim == 1:
        return service.search_vector(query, k, filters)
    if isinstance(query, str) and not Path(query).exists():
        return service.search_text(query, k, filters)
    return service.search_image(query, k, filters)


__all__ = ["SearchService", "SearchResult", "SearchResponse", "FILTERABLE", "load", "check_compatible",
           "same_model", "encode", "search"]
