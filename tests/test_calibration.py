"""Calibrated % match: the fit is monotone and in [0, 1], stored in the manifest with its sample size, applied by the
search service (score stays the raw cosine), and an older index without one loads and is labelled raw."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import stylishi
from stylishi import calibration, catalog
from stylishi import evaluate as ev


def copy_index(src: Path, dst: Path) -> Path:
    return Path(shutil.copytree(src, dst, ignore=shutil.ignore_patterns("catalog_images")))


# -- the fit ------------------------------------------------------------------------------------------------------
def test_platt_fit_is_monotone_in_range_and_matches_the_observed_rates():
    rng = np.random.default_rng(0)
    pos = rng.normal(0.90, 0.02, 3000)
    neg = rng.normal(0.86, 0.02, 6000)
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(3000, bool), np.zeros(6000, bool)])
    fit = calibration.fit_platt(scores, labels, queries=900)
    grid = np.linspace(-1, 1, 2001)
    p = fit.probability(grid)
    assert np.all((p >= 0) & (p <= 1)) and np.all(np.diff(p) >= 0) and fit.a > 0
    assert (fit.n, fit.positives, fit.queries) == (9000, 3000, 900)
    # Calibrated: in each score band the predicted chance is close to the share of positives observed there.
    for lo, hi in ((0.84, 0.86), (0.87, 0.89), (0.90, 0.92)):
        band = (scores >= lo) & (scores < hi)
        assert abs(fit.probability(scores[band]).mean() - labels[band].mean()) < 0.05


def test_separable_data_give_finite_parameters_and_useless_scores_a_flat_base_rate():
    sep = calibration.fit_platt(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1], bool))
    assert np.isfinite(sep.a) and np.isfinite(sep.b) and sep.probability(0.9) > 0.5 > sep.probability(0.1)
    # Higher scores less often right (a model worse than chance): never an inverted % match, the base rate instead.
    inverted = calibration.fit_platt(np.linspace(0, 1, 100), np.arange(100) < 25)
    assert inverted.a == 0 and inverted.probability(0.0) == pytest.approx(inverted.probability(1.0))
    assert inverted.probability(0.5) == pytest.approx(0.25, abs=0.02)


def test_a_damaged_calibration_section_is_ignored_never_trusted():
    good = calibration.fit_platt(np.array([0.1, 0.9, 0.2, 0.8]), np.array([0, 1, 0, 1], bool)).to_dict()
    assert calibration.from_manifest({}) == {}
    assert set(calibration.from_manifest({"calibration": {"image": good, "text": good}})) == {"image", "text"}
    for bad in ({**good, "a": -3.0}, {**good, "method": "magic"}, {**good, "b": "x"}, {"method": "platt"}, "0.9"):
        assert calibration.from_manifest({"calibration": {"image": bad}}) == {}, bad


# -- on the demo index (the fixture is built by the real builder, whose hook fits the calibration) ---------------------
def test_the_builder_stores_a_calibration_with_its_sample_size(demo_index):
    manifest = json.loads((demo_index / catalog.MANIFEST).read_text())
    section = manifest["calibration"]
    assert section["target"] == "article_type" and section["fitted_by"] == "build"
    for kind in ("image", "text"):
        fit = section[kind]
        assert fit["method"] == "platt" and fit["a"] >= 0 and fit["queries"] > 0
        assert fit["n"] == fit["queries"] * calibration.TOP_K and 0 <= fit["positives"] <= fit["n"]
    catalog.load(demo_index)  # the manifest's checksums still hold


def test_the_service_applies_it_and_score_stays_the_raw_cosine(service, demo_index):
    fits = service.calibration
    assert set(fits) == {"image", "text"}
    shot = demo_index / "catalog_images" / "demo-0005.png"
    for response, fit in ((service.search_image(shot, k=10), fits["image"]),
                          (service.search_text("red dress", k=10), fits["text"]),
                          (service.search_item("demo-0005", k=10), fits["image"])):
        assert response.calibrated and response.to_dict()["calibrated"] is True
        for r in response.results:
            assert 0 <= r.match <= 100
            assert r.match == pytest.approx(float(fit.probability(r.score)) * 100, abs=0.06)
        matches = [r.match for r in response.results]
        assert matches == sorted(matches, reverse=True)  # monotone: rank order and % order agree
    response = service.search_image(shot, k=1)
    top = response.results[0]
    stored = service.catalog.store.vectors(np.array([service.catalog.row_of(top.id)], dtype=np.int64))[0]
    assert top.id == "demo-0005"
    assert top.score == pytest.approx(float(response.vector @ stored), abs=1e-4)  # the raw cosine, not the %


def test_a_same_type_result_scores_higher_than_an_other_type_one(service, demo_index):
    """Over camera-like shots of demo items: results of the query's own article type carry a higher % match, on
    average, than results of another type (the calibration is fitted on other shots: another seed)."""
    from stylishi.camera import camera_shot
    from stylishi.images import load_image
    import random

    items = service.catalog.items
    jpegs = service.catalog.thumbnails.column("jpeg")
    same, other = [], []
    for row in ev.sample_rows(len(items), 80, seed=9):
        shot = camera_shot(load_image(jpegs[int(row)].as_py()), random.Random(f"test-{row}"))
        for r in service.search_image(shot, k=10).results:
            if r.id != items.at[int(row), "id"]:
                (same if r.article_type == items.at[int(row), "article_type"] else other).append(r.match)
    assert same and other
    assert np.mean(same) > np.mean(other)


def test_an_old_index_without_calibration_loads_and_is_labelled_raw(demo_index, tmp_path):
    old = copy_index(demo_index, tmp_path / "old")
    calibration.write(old, None)
    assert "calibration" not in json.loads((old / catalog.MANIFEST).read_text())
    raw = stylishi.load(old)
    assert raw.calibration == {}
    response = raw.search_image(demo_index / "catalog_images" / "demo-0005.png", k=5)
    assert response.calibrated is False
    assert [r.match for r in response.results] == [round(min(1.0, max(0.0, r.score)) * 100, 1)
                                                   for r in response.results]


def test_cards_say_match_when_calibrated_and_similarity_when_raw(service, demo_index):
    from stylishi_ui.cards import caption, match_text

    response = service.search_image(demo_index / "catalog_images" / "demo-0005.png", k=3)
    top = response.results[0]
    assert response.calibrated
    assert match_text(top.match, top.score) == f"{top.match:.0f}% match"
    assert caption(top, response.calibrated).startswith(f"#1 · {top.match:.0f}% match\n{top.name}")
    assert caption(top, False).startswith(f"#1 · similarity {top.score:.2f}\n{top.name}")
    assert "%" not in caption(top, False)


def test_eval_calibrate_writes_it_into_a_local_index_keeping_checksums(demo_index, tmp_path):
    local = copy_index(demo_index, tmp_path / "local")
    calibration.write(local, None)
    assert ev.main(["--index", str(local), "--sample", "20", "--calibrate", "--out", str(tmp_path / "r"),
                    "--no-progress"]) == 0
    manifest = json.loads((local / catalog.MANIFEST).read_text())
    assert manifest["calibration"]["fitted_by"] == "evaluate" and manifest["calibration"]["image"]["n"] > 0
    assert stylishi.load(local).calibration  # loads (checksums verified) with the calibration
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["calibration"] == manifest["calibration"]
