"""The evaluation command: every metric on the demo, in range, and not faked; n/a with reasons; several models side
by side; a Hub-built index through the local Hub stand-in (tests/hub_server.py) in a subprocess."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import stylishi
from stylishi import builder, catalog
from stylishi import evaluate as ev
from stylishi.demo import garment_picture, save_tiny_clip
from stylishi.embedder import Embedder

ROOT = Path(__file__).resolve().parents[1]


def copy_index(src: Path, dst: Path) -> Path:
    return Path(shutil.copytree(src, dst, ignore=shutil.ignore_patterns("catalog_images")))


def rewrite_items(root: Path, change) -> None:
    """Replace items.parquet with change(items) and record its new checksum, as a rebuilt index would."""
    items = pq.read_table(root / catalog.ITEMS_FILE).to_pandas()
    pq.write_table(pa.Table.from_pandas(change(items), preserve_index=False), root / catalog.ITEMS_FILE)
    manifest = json.loads((root / catalog.MANIFEST).read_text())
    manifest["files"][catalog.ITEMS_FILE] = catalog._file_entry(root / catalog.ITEMS_FILE)
    (root / catalog.MANIFEST).write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def demo_report(demo_index, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval_demo")
    assert ev.main(["--index", str(demo_index), "--sample", "64", "--seed", "3", "--out", str(out),
                    "--no-progress"]) == 0
    return json.loads((out / "report.json").read_text()), out


def test_the_report_on_the_demo_has_every_metric_in_range(demo_report, demo_index):
    report, out = demo_report
    assert report["sample"] == 64 and report["catalog_size"] == len(stylishi.load(demo_index).catalog)
    (run,) = report["runs"]
    assert run["na"] == {}
    assert set(run["metrics"]) == set(ev.METRICS)
    for key, value in run["metrics"].items():
        assert value is not None, key
        if key.startswith("speed."):
            assert 0 < value < 10_000
        else:
            assert 0.0 <= value <= 1.0, (key, value)
    assert run["metrics"]["camera.recall@1"] <= run["metrics"]["camera.recall@10"]
    assert run["metrics"]["text.name_recall@1"] <= run["metrics"]["text.name_recall@10"]
    assert run["queries"]["camera"] == run["queries"]["similar"] == 64
    md = (out / "report.md").read_text()
    assert "recall@10" in md and "weighted F1" in md and "0.730" in md  # the FashionCLIP anchor is set beside it
    assert not (out / "models.png").exists()  # one model: no chart


def test_numbers_are_not_faked_a_shuffled_catalog_scores_far_lower(demo_index, tmp_path):
    """The same vectors with the products' descriptions shuffled among them: type, colour and name metrics must
    collapse toward chance, while the picture-only metric (camera shot → the item itself) does not move."""
    wrong = copy_index(demo_index, tmp_path / "shuffled")
    columns = ["name", "category", "subcategory", "article_type", "colour", "pattern"]

    def shuffle(items):
        perm = np.random.default_rng(0).permutation(len(items))
        items[columns] = items[columns].iloc[perm].to_numpy()
        return items

    rewrite_items(wrong, shuffle)
    rows = ev.sample_rows(len(stylishi.load(demo_index).catalog), 100, seed=5)
    groups = ("camera", "similar")
    right = ev.evaluate_service(stylishi.load(demo_index), rows, seed=5, groups=groups).metrics
    shuffled = ev.evaluate_service(stylishi.load(wrong), rows, seed=5, groups=groups).metrics
    assert right["similar.colour_p@10"] > shuffled["similar.colour_p@10"] + 0.3
    assert right["similar.type_p@10"] > shuffled["similar.type_p@10"] + 0.1
    assert right["similar.type_map"] > shuffled["similar.type_map"]
    assert right["camera.mrr"] == shuffled["camera.mrr"]  # same pictures, same vectors, same seed


def test_a_wrong_model_finds_the_photographed_item_far_less_often(demo_index, service, tmp_path):
    """The demo's vectors searched with shots embedded by another (same-sized) model: near chance."""
    other = Embedder.load(save_tiny_clip(tmp_path / "other", seed=11), device="cpu", mode="fp32")
    wrong = stylishi.SearchService(other, service.catalog)
    rows = ev.sample_rows(len(service.catalog), 120, seed=1)
    right = ev.evaluate_service(service, rows, seed=1, groups=("camera",)).metrics
    bad = ev.evaluate_service(wrong, rows, seed=1, groups=("camera",)).metrics
    assert bad["camera.recall@10"] <= 0.1  # 10 of 1,200 items by chance is 0.008
    assert right["camera.mrr"] > bad["camera.mrr"]


def test_a_catalog_without_article_types_or_names_reports_n_a_with_reasons(demo_index, tmp_path):
    bare = copy_index(demo_index, tmp_path / "bare")
    rewrite_items(bare, lambda items: items.drop(columns=["article_type", "name"]))
    out = tmp_path / "report"
    assert ev.main(["--index", str(bare), "--sample", "24", "--out", str(out), "--no-progress"]) == 0
    (run,) = json.loads((out / "report.json").read_text())["runs"]
    for key in ("similar.type_p@10", "similar.type_map", "text.type_p@1", "text.colour_type_p@10",
                "zeroshot.type_f1"):
        assert run["metrics"][key] is None and "article_type" in run["na"][key], key
    for key in ("text.name_recall@1", "text.name_mrr"):
        assert run["metrics"][key] is None and "name" in run["na"][key]
    assert 0 <= run["metrics"]["similar.colour_p@10"] <= 1 and 0 <= run["metrics"]["camera.recall@10"] <= 1
    assert "n/a" in (out / "report.md").read_text()


def test_several_models_side_by_side_with_a_chart(demo_index, tmp_path, capsys):
    other = save_tiny_clip(tmp_path / "other-clip", seed=5)
    out = tmp_path / "cmp"
    assert ev.main(["--index", str(demo_index), "--sample", "24", "--out", str(out), "--no-progress",
                    "--models", str(demo_index / "model"), str(other)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [r["label"] for r in report["runs"]] == [str(demo_index / "model"), str(other)]
    for run in report["runs"]:
        assert run["catalog_size"] == 24 and run["metrics"]["speed.ms_per_image"] > 0
        assert all(v is not None for v in run["metrics"].values())
    printed = capsys.readouterr().out
    assert str(other) in printed and "ms per image" in printed
    png = (out / "models.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_weighted_f1_is_scikit_learns_weighted_average():
    assert ev.weighted_f1(["a", "a", "b", "c"], ["a", "b", "b", "c"]) == pytest.approx(0.75)
    assert ev.weighted_f1(["a", "b"], ["b", "a"]) == 0.0
    assert ev.weighted_f1(["a", "b", "b"], ["a", "b", "b"]) == 1.0


def test_bad_arguments_get_one_line_naming_the_fix(demo_index, tmp_path, capsys):
    assert ev.main(["--index", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "build_index.py" in capsys.readouterr().err
    assert ev.main(["--index", "owner/idx", "--calibrate", "--out", str(tmp_path / "o")]) == 2
    assert "local folder" in capsys.readouterr().err


# -- a Hub-built index, through the local Hub stand-in -------------------------------------------------------------
from tests.hub_server import HubStandIn  # noqa: E402  (kept beside the tests that use it)

PRODUCTS = [("Dresses", "Red"), ("Dresses", "Blue"), ("Caps", "Red"), ("Caps", "Green"), ("Trousers", "Black"),
            ("Trousers", "Blue"), ("Casual Shoes", "Black"), ("Handbags", "Brown"), ("Tshirts", "Yellow"),
            ("Tshirts", "Red")]


@pytest.mark.slow
def test_the_command_runs_on_a_hub_built_index(tmp_path):
    import io

    clip = save_tiny_clip(tmp_path / "tiny-clip")
    with HubStandIn() as hub:
        model_sha = hub.add_repo("owner/tiny-clip", folder=clip)
        embedder = Embedder.load(clip, model_id="owner/tiny-clip", revision=model_sha, device="cpu", mode="fp32")
        records = []
        for n, (kind, colour) in enumerate(PRODUCTS):
            buf = io.BytesIO()
            garment_picture(kind, colour, "Solid", seed=n, size=96).save(buf, format="PNG")
            records.append(builder.Record(id=str(1000 + n), image=buf.getvalue(),
                                          metadata={"name": f"{colour} {kind.lower()}", "category": "Apparel",
                                                    "article_type": kind, "colour": colour}))
        builder.build(records, embedder, tmp_path / "idx", progress=False)
        sha = hub.add_repo("owner/idx", "dataset", folder=tmp_path / "idx")
        home = tmp_path / "home"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "STYLISHI_"))}
        env.update(HF_ENDPOINT=hub.url, HF_HOME=str(home / "hf"), STYLISHI_CACHE=str(home / "stylishi"),
                   HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1", TQDM_DISABLE="1",
                   NO_PROXY="*", no_proxy="*", PYTHONPATH=str(ROOT), STYLISHI_THREADS="1")
        done = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), "--index", "owner/idx", "--sample", "8",
                               "--seed", "2", "--out", str(tmp_path / "out"), "--no-progress"],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stdout + done.stderr
        assert ("GET", "/api/datasets/owner/idx/revision/main") in hub.requests
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["index"] == f"owner/idx@{sha}" and report["catalog_size"] == 10 and report["sample"] == 8
    (run,) = report["runs"]
    assert run["model"] == "owner/tiny-clip" and run["na"] == {}
    assert all(0 <= v <= 1 for k, v in run["metrics"].items() if not k.startswith("speed."))
    assert "recall@10" in done.stdout and "product name" in done.stdout
