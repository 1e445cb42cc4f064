"""No near-duplicates (issue 11, part 5): the folding rule on its own, then the real service on a catalog built with
one picture under three ids and a product group (tests/conftest.py `dup_index`)."""
from __future__ import annotations

import numpy as np
import pytest

from stylishi.dedup import DEFAULT_THRESHOLD, Kept, fold, parse_flag
from stylishi.errors import QueryError, SettingError
from tests.conftest import DUP_COPIES, DUP_GROUP, DUP_SOURCE

SAME_PICTURE = {DUP_SOURCE, *DUP_COPIES}


def unit(*rows) -> np.ndarray:
    v = np.asarray(rows, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# -- the rule ---------------------------------------------------------------------------------------------------------
def test_identical_vectors_fold_into_the_best_and_are_counted():
    vectors = unit([1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0])
    kept = fold([10, 11, 12, 13], [0.9, 0.9, 0.5, 0.4], vectors, threshold=0.999)
    assert kept == [Kept(10, 0.9, (11, 13)), Kept(12, 0.5, ())]


def test_the_threshold_decides_for_close_vectors():
    vectors = unit([1, 0.02, 0], [1, 0, 0])  # cosine 0.9998
    assert len(fold([1, 2], [0.9, 0.8], vectors, threshold=0.9995)) == 1
    assert len(fold([1, 2], [0.9, 0.8], vectors, threshold=1.0)) == 2


def test_same_picture_and_same_group_fold_whatever_the_vectors():
    vectors = unit([1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1])
    kept = fold([1, 2, 3, 4], [0.9, 0.8, 0.7, 0.6], vectors, threshold=0.999,
                pictures=["p", "p", None, None], groups=[None, None, "g", "g"])
    assert [(h.row, h.folded) for h in kept] == [(1, (2,)), (3, (4,))]


def test_unknown_pictures_and_groups_never_match():
    vectors = unit([1, 0, 0], [0, 1, 0])
    kept = fold([1, 2], [0.9, 0.8], vectors, threshold=0.999, pictures=[None, None], groups=[None, None])
    assert len(kept) == 2


def test_k_results_at_most_and_later_copies_still_counted():
    vectors = unit([1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0])
    kept = fold([1, 2, 3, 4], [0.9, 0.8, 0.7, 0.6], vectors, threshold=0.999, k=2)
    assert [(h.row, h.folded) for h in kept] == [(1, (4,)), (2, ())]  # 3 dropped (not shown), 4 folded into 1


@pytest.mark.parametrize("value, expected", [(None, True), ("", True), (True, True), (False, False), ("false", False),
                                             ("TRUE", True), (0, False), (1, True), ("no", False)])
def test_the_api_flag(value, expected):
    assert parse_flag(value) is expected


@pytest.mark.parametrize("junk", ["maybe", 7, [True], {"on": 1}])
def test_a_junk_flag_is_refused_with_the_form(junk):
    with pytest.raises(QueryError, match="dedup must be true"):
        parse_flag(junk)


def test_the_threshold_setting(monkeypatch):
    from stylishi.config import Settings, dedup_threshold

    assert dedup_threshold() == DEFAULT_THRESHOLD
    monkeypatch.setenv("STYLISHI_DEDUP_THRESHOLD", "0.97")
    assert Settings().dedup_threshold == 0.97
    for bad in ("abc", "0", "1.5", "-1"):
        monkeypatch.setenv("STYLISHI_DEDUP_THRESHOLD", bad)
        with pytest.raises(SettingError, match="STYLISHI_DEDUP_THRESHOLD"):
            dedup_threshold()


# -- the service ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dup_service(dup_index):
    import stylishi

    return stylishi.load(dup_index)


def test_one_picture_under_three_ids_is_one_result(dup_service, dup_index):
    picture = dup_index.parent / "pictures" / f"{DUP_SOURCE}.png"
    response = dup_service.search_image(picture, k=5)
    ids = [r.id for r in response.results]
    top = response.results[0]
    assert top.id in (DUP_SOURCE, *DUP_COPIES) and top.folded == 2, [(r.id, r.folded) for r in response.results]
    assert sorted([top.id, *top.folded_ids]) == sorted([DUP_SOURCE, *DUP_COPIES])
    assert len(set(ids) & {DUP_SOURCE, *DUP_COPIES}) == 1 and len(ids) == 5  # still k results
    assert response.dedup and response.folded >= 2
    assert [r.rank for r in response.results] == [1, 2, 3, 4, 5]

    plain = dup_service.search_image(picture, k=5, dedup=False)
    assert {r.id for r in plain.results[:3]} == {DUP_SOURCE, *DUP_COPIES}
    assert all(r.folded == 0 for r in plain.results) and not plain.dedup


def test_one_product_group_is_one_result(dup_service):
    first, second = DUP_GROUP
    results = dup_service.search_item(DUP_SOURCE, k=20).results  # 20 of 62: every item is a candidate
    kept = [r for r in results if r.id in DUP_GROUP]
    assert len(kept) == 1 and set(kept[0].folded_ids) & set(DUP_GROUP), [(r.id, r.folded_ids) for r in results]
    both = dup_service.search_item(DUP_SOURCE, k=50, dedup=False).results
    assert {first, second} <= {r.id for r in both}


def test_more_like_this_returns_neither_the_item_nor_its_copies(dup_service):
    results = dup_service.search_item(DUP_COPIES[0], k=5).results
    shown = [r.id for r in results] + [i for r in results for i in r.folded_ids]
    assert len(results) == 5 and not set(shown) & SAME_PICTURE
    plain = [r.id for r in dup_service.search_item(DUP_COPIES[0], k=5, dedup=False).results]
    assert set(plain[:2]) == {DUP_SOURCE, DUP_COPIES[1]}  # without dedup: the same picture under the other ids


def test_refine_never_returns_copies_of_the_judged_items(dup_service):
    results = dup_service.refine([DUP_SOURCE], [], 5).results
    assert len(results) == 5 and not {r.id for r in results} & SAME_PICTURE
    plain = dup_service.refine([DUP_SOURCE], [], 5, dedup=False).results
    assert {r.id for r in plain[:2]} == set(DUP_COPIES)


def test_a_lower_threshold_folds_more(dup_index):
    import stylishi

    queries = ("red dress", "blue shoes")
    strict = stylishi.load(dup_index)
    # The loose threshold: the median cosine between two of the strict top 10s' results (a trained model keeps even
    # close results apart, so a fixed 0.9 folded nothing), so that about half of those pairs are now "the same".
    pairs = []
    for q in queries:
        rows = np.array([strict.catalog.row_of(r.id) for r in strict.search_text(q, k=10).results])
        v = strict.catalog.store.vectors(rows)
        pairs += list((v @ v.T)[np.triu_indices(len(rows), 1)])
    loose = stylishi.load(dup_index)
    loose.dedup_threshold = float(np.median(pairs))
    assert loose.dedup_threshold < strict.dedup_threshold
    folded = lambda service: sum(service.search_text(q, k=10).folded for q in queries)  # noqa: E731
    assert folded(loose) > folded(strict)


def test_hidden_items_are_never_shown_and_take_their_copies_with_them():
    vectors = unit([1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0])
    kept = fold([7, 8, 1, 2, 3], [1, 1, 0.9, 0.8, 0.7], vectors, threshold=0.999, hidden=2, k=5)
    assert [(h.row, h.folded) for h in kept] == [(2, ())]  # 1 copies hidden 7, 3 copies hidden 8
