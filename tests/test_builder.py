"""build_index.py and the builder: folders with broken files, dataset columns, the offline demo command."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import stylishi
from stylishi import builder
from stylishi.demo import garment_picture
from stylishi.embedder import Embedder

ROOT = Path(__file__).resolve().parents[1]


def png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def embedder(demo_index):
    return Embedder.load(demo_index / "model", device="cpu")


@pytest.fixture()
def messy_folder(tmp_path) -> Path:
    """Six good pictures (two in a subfolder) and five broken files that must be skipped, not fatal."""
    root = tmp_path / "photos"
    (root / "shoes").mkdir(parents=True)
    good = [("red-dress.png", "Dresses", "Red"), ("blue-cap.jpg", "Caps", "Blue"), ("green-skirt.webp", "Skirts", "Green"),
            ("pink-bag.png", "Handbags", "Pink"), ("shoes/black.png", "Casual Shoes", "Black"),
            ("shoes/brown.jpg", "Casual Shoes", "Brown")]
    for i, (name, kind, colour) in enumerate(good):
        garment_picture(kind, colour, "Solid", seed=i).save(root / name)
    full = png(garment_picture("Tshirts", "Yellow", "Striped", seed=9))
    (root / "truncated.png").write_bytes(full[: len(full) // 3])
    (root / "random.jpg").write_bytes(os.urandom(2048))
    (root / "empty.png").write_bytes(b"")
    (root / "page.webp").write_bytes(b"<html>not a picture</html>")
    (root / "shoes" / "huge.png").write_bytes(png(garment_picture("Caps", "Red", "Solid").resize((5000, 20))))
    return root


def test_folder_build_skips_and_counts_broken_files(tmp_path, messy_folder, embedder):
    report = builder.build(builder.folder_records(messy_folder), embedder, tmp_path / "out", progress=False,
                           batch_size=4)
    assert report.items == 6
    assert report.skipped == {"unreadable image": 5}
    assert report.validation_passed == report.validated == 6
    summary = report.summary()
    assert "items        6" in summary and "skipped      5 (5 unreadable image)" in summary
    from stylishi import catalog as catalog_mod

    svc = stylishi.SearchService(embedder, catalog_mod.load(tmp_path / "out"))
    assert set(svc.catalog.items["id"]) == {"red-dress", "blue-cap", "green-skirt", "pink-bag", "shoes/black", "shoes/brown"}
    assert svc.search_image(messy_folder / "shoes" / "brown.jpg", k=1).results[0].id == "shoes/brown"


def test_folder_metadata_csv_and_limit(tmp_path, messy_folder, embedder):
    pd.DataFrame({"file_name": ["red-dress.png", "blue-cap.jpg", "shoes/black.png"],
                  "id": ["SKU-1", "SKU-2", "SKU-3"], "name": ["Red dress", "Blue cap", "Black shoes"],
                  "colour": ["Red", "Blue", "Black"], "gender": ["Women", "Men", "Unisex"]}
                 ).to_csv(messy_folder / "metadata.csv", index=False)
    for name in ("green-skirt.webp", "pink-bag.png", "shoes/brown.jpg"):
        (messy_folder / name).unlink()
    report = builder.build(builder.folder_records(messy_folder), embedder, tmp_path / "out", progress=False, limit=2)
    assert report.items == 2
    items = pd.read_parquet(tmp_path / "out" / "items.parquet")
    names = {"SKU-1": "Red dress", "SKU-2": "Blue cap", "SKU-3": "Black shoes"}
    assert len(items) == 2 and all(names[i] == n for i, n in zip(items["id"], items["name"]))
    assert set(items.columns) >= {"id", "name", "colour", "gender", "thumbnail"}


def test_folder_indexes_pictures_the_metadata_does_not_list(tmp_path, messy_folder, embedder):
    """6 pictures, a metadata.csv with 2 of them and 1 row naming no picture: all 6 are indexed, both kinds of
    mismatch are in the summary, and nothing is invented for the unlisted pictures (no category, colour, ...)."""
    for broken in ("truncated.png", "random.jpg", "empty.png", "page.webp", "shoes/huge.png"):
        (messy_folder / broken).unlink()
    pd.DataFrame({"file_name": ["red-dress.png", "shoes/black.png", "gone.png"], "id": ["SKU-1", "", "SKU-9"],
                  "name": ["Red dress", "Black shoes", "Gone"], "category": ["Apparel", "Footwear", "Apparel"],
                  "articleType": ["Dresses", "Casual Shoes", "Tops"]}).to_csv(messy_folder / "metadata.csv",
                                                                            index=False)
    source = builder.folder_records(messy_folder)
    report = builder.build(source, embedder, tmp_path / "out", progress=False)
    assert report.items == 6 and report.validation_passed == report.validated == 6
    assert sorted(source.unlisted) == ["blue-cap.jpg", "green-skirt.webp", "pink-bag.png", "shoes/brown.jpg"]
    assert source.missing == ["gone.png"]
    summary = report.summary()
    assert "4 pictures not in metadata.csv: indexed with ids from their file names" in summary
    assert "blue-cap.jpg, green-skirt.webp, pink-bag.png, shoes/brown.jpg)" in summary
    assert "1 row of metadata.csv with no picture in the folder: not indexed (gone.png)" in summary
    items = pd.read_parquet(tmp_path / "out" / "items.parquet").set_index("id")
    assert set(items.index) == {"SKU-1", "shoes/black", "blue-cap", "green-skirt", "pink-bag", "shoes/brown"}
    assert items.loc["SKU-1", ["name", "category", "article_type"]].tolist() == ["Red dress", "Apparel", "Dresses"]
    assert items.loc["shoes/black", "name"] == "Black shoes"  # an empty id cell: the id comes from the file name
    assert items.loc[["blue-cap", "pink-bag"], ["name", "category", "article_type"]].isna().all().all()
    # Every picture listed and every row found: no note at all.
    (messy_folder / "metadata.csv").write_text("file_name,name\nred-dress.png,Red dress\n")
    for name in ("blue-cap.jpg", "green-skirt.webp", "pink-bag.png", "shoes/black.png", "shoes/brown.jpg"):
        (messy_folder / name).unlink()
    assert builder.folder_records(messy_folder).notes == []


def test_folder_without_metadata_invents_no_category(tmp_path, embedder):
    """Pictures sorted into subfolders (dresses/, shoes/) keep their path as id; the folder is not made a label."""
    for sub, kind in (("dresses", "Dresses"), ("shoes", "Casual Shoes")):
        (tmp_path / "photos" / sub).mkdir(parents=True)
        for i in range(2):
            garment_picture(kind, "Red", "Solid", seed=i).save(tmp_path / "photos" / sub / f"{i}.png")
    source = builder.folder_records(tmp_path / "photos")
    assert [r.id for r in source] == ["dresses/0", "dresses/1", "shoes/0", "shoes/1"]
    assert all(r.metadata == {} for r in source) and source.notes == []
    builder.build(source, embedder, tmp_path / "out", progress=False)
    from stylishi import catalog as catalog_mod

    svc = stylishi.SearchService(embedder, catalog_mod.load(tmp_path / "out"))
    top = svc.search_image(tmp_path / "photos" / "shoes" / "1.png", k=1).results[0]
    assert (top.id, top.name, top.category, top.article_type, top.colour) == ("shoes/1", "shoes/1", "", "", "")
    assert svc.filter_values == {}


def test_build_is_quiet(tmp_path, messy_folder, embedder, caplog, capfd):
    """Validation logs no query lines; skip messages are for a build log, not for a web page; no framework bars."""
    import logging

    # Article types make the build fit its "% match" calibration too, which searches the new index.
    pd.DataFrame({"file_name": ["red-dress.png", "blue-cap.jpg", "green-skirt.webp", "pink-bag.png", "shoes/black.png",
                                "shoes/brown.jpg"],
                  "article_type": ["Dresses", "Caps", "Skirts", "Handbags", "Casual Shoes", "Casual Shoes"],
                  "colour": ["Red", "Blue", "Green", "Pink", "Black", "Brown"]}).to_csv(messy_folder / "metadata.csv",
                                                                                        index=False)
    caplog.set_level(logging.INFO)
    out = tmp_path / "out"
    builder.build(builder.folder_records(messy_folder), embedder, out, progress=False)
    assert json.loads((out / "manifest.json").read_text()).get("calibration")  # the searches did run
    assert not [r for r in caplog.records if r.name == "stylishi.query"]
    skips = sorted(r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped "))
    assert len(skips) == 5 and not any("Please" in m or "upload" in m for m in skips), skips
    assert "skipped truncated.png: the picture is damaged or incomplete (the file may have been cut off)" in skips
    assert "skipped empty.png: the file is empty (0 bytes)" in skips
    err = capfd.readouterr().err
    assert "Downloading data" not in err and "Generating train split" not in err


def test_dataset_source_maps_fashion_columns(tmp_path, embedder):
    """A dataset laid out like ashraq/fashion-product-images-small, read through `datasets` streaming."""
    repo = tmp_path / "fashion"
    (repo / "data").mkdir(parents=True)
    rows = [("15970", "Men", "Apparel", "Topwear", "Shirts", "Navy Blue", "Fall", 2011, "Casual", "Turtle Check Men Navy Blue Shirt", "Tshirts", "Navy Blue"),
            ("39386", "Women", "Apparel", "Bottomwear", "Skirts", "Green", "Summer", 2012, "Casual", "Green skirt", "Skirts", "Green"),
            ("59263", "Women", "Accessories", "Bags", "Handbags", "Pink", "Winter", 2016, "Casual", "Pink bag", "Handbags", "Pink")]
    table = pa.table({
        "id": [r[0] for r in rows], "gender": [r[1] for r in rows], "masterCategory": [r[2] for r in rows],
        "subCategory": [r[3] for r in rows], "articleType": [r[4] for r in rows], "baseColour": [r[5] for r in rows],
        "season": [r[6] for r in rows], "year": [r[7] for r in rows], "usage": [r[8] for r in rows],
        "productDisplayName": [r[9] for r in rows],
        "image": [{"bytes": png(garment_picture(r[10], r[11], "Solid", seed=i)), "path": None} for i, r in enumerate(rows)]
                 + [],
    })
    pq.write_table(table, repo / "data" / "train-00000-of-00001.parquet")
    (repo / "README.md").write_text(
        "---\ndataset_info:\n  features:\n  - name: id\n    dtype: string\n  - name: gender\n    dtype: string\n"
        "  - name: masterCategory\n    dtype: string\n  - name: subCategory\n    dtype: string\n"
        "  - name: articleType\n    dtype: string\n  - name: baseColour\n    dtype: string\n"
        "  - name: season\n    dtype: string\n  - name: year\n    dtype: int64\n  - name: usage\n    dtype: string\n"
        "  - name: productDisplayName\n    dtype: string\n  - name: image\n    dtype: image\n---\n# tiny fashion\n")
    report = builder.build(builder.dataset_records(str(repo)), embedder, tmp_path / "out", progress=False,
                           source={"kind": "hub-dataset", "id": "tiny"})
    assert report.items == 3 and report.validation_passed == 3
    items = pd.read_parquet(tmp_path / "out" / "items.parquet")
    assert list(items["id"]) == ["15970", "39386", "59263"]
    first = items.iloc[0]
    assert (first["name"], first["category"], first["subcategory"], first["article_type"], first["colour"]) == (
        "Turtle Check Men Navy Blue Shirt", "Apparel", "Topwear", "Shirts", "Navy Blue")


def test_nothing_readable_is_a_clear_error(tmp_path, embedder):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.jpg").write_bytes(b"nope")
    with pytest.raises(stylishi.StyliShiError, match="No readable images"):
        builder.build(builder.folder_records(tmp_path / "bad"), embedder, tmp_path / "out", progress=False)


def run_cli(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "build_index.py"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_cli_help_documents_every_flag():
    out = run_cli("--help").stdout
    for flag in ("--dataset", "--images", "--demo", "--out", "--limit", "--model", "--batch-size", "--index-factory"):
        assert flag in out


@pytest.mark.slow
def test_cli_demo_then_images_build(tmp_path, messy_folder):
    """`python build_index.py --demo --out DIR` exactly as the README says, then a folder build with its model."""
    done = run_cli("--demo", "--out", str(tmp_path / "demo"), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "items        1200" in done.stdout and "32/32 sampled items found themselves at rank 1" in done.stdout
    assert '"event":"query"' not in done.stderr and "Downloading data" not in done.stderr  # a quiet build
    manifest = json.loads((tmp_path / "demo" / "manifest.json").read_text())
    assert manifest["model"]["id"] == "./model" and manifest["count"] == 1200
    svc = stylishi.load(tmp_path / "demo")
    assert svc.search_image(tmp_path / "demo" / "catalog_images" / "demo-0123.png", k=1).results[0].id == "demo-0123"

    done = run_cli("--images", str(messy_folder), "--model", str(tmp_path / "demo" / "model"), "--out",
                   str(tmp_path / "folder"), "--index-factory", "HNSW16")
    assert done.returncode == 0, done.stderr
    assert "skipped      5 (5 unreadable image)" in done.stdout and "IndexHNSWFlat" in done.stdout
    # Quiet: the one progress bar, one line per skipped file written for a build, nothing from the frameworks.
    err = done.stderr
    assert "embedding: 100%" in err and err.count("WARNING stylishi.builder: skipped ") == 5, err
    for noise in ('"event":"query"', "Downloading data", "Generating train split", "Loading weights", "Please",
                  "Warning", "INFO "):
        assert noise not in err, (noise, err)


def test_cli_reports_errors_without_a_traceback(tmp_path, messy_folder):
    # A wrong folder is said first (before any model is fetched), then a wrong model.
    done = run_cli("--images", str(tmp_path / "missing"), "--model", str(tmp_path / "nomodel"), "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert f"error: The image folder {tmp_path / 'missing'} does not exist" in done.stderr and "Traceback" not in done.stderr
    done = run_cli("--images", str(messy_folder), "--model", str(tmp_path / "nomodel"), "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert "error: Could not load the model" in done.stderr and "no such folder" in done.stderr and "Traceback" not in done.stderr
    # Offline, the default model not cached: the message says how to build offline.
    done = run_cli("--images", str(messy_folder), "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "--model demo_index/model" in done.stderr and "Traceback" not in done.stderr
