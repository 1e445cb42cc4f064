"""build_index.py --ray: decoding and embedding on a local Ray instance with 2 workers give the same artifact as the
single-process build (same ids in the same order, cosine >= 0.9999 per vector)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stylishi import ray_build

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not ray_build.available(), reason="Ray Data not installed: the scale extra "
                                 "(pip install -r requirements-scale.txt; scripts/setup.sh --dev installs it)")]


def test_ray_build_matches_the_single_process_build(tmp_path):
    from stylishi import builder, catalog
    from stylishi.demo import demo_items, save_tiny_clip
    from stylishi.embedder import Embedder

    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for item in demo_items(limit=48):
        item.image.save(images / f"{item.id}.png")
        rows.append({"file_name": f"{item.id}.png", "id": item.id, **item.metadata})
    pd.DataFrame(rows).to_csv(images / "metadata.csv", index=False)
    (images / "broken.jpg").write_bytes(b"not a picture")  # skipped on a worker as it is here
    embedder = Embedder.load(save_tiny_clip(tmp_path / "model"), device="cpu", mode="fp32")

    here = builder.build(builder.folder_records(images), embedder, tmp_path / "here", progress=False,
                         calibrate=False)
    import ray

    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 runtime_env=ray_build.runtime_env())
        on_ray = builder.build(builder.folder_records(images), embedder, tmp_path / "ray", progress=False,
                               calibrate=False, ray="local", batch_size=16)
        assert ray.cluster_resources().get("CPU") == 2
    finally:
        ray.shutdown()
    assert on_ray.items == here.items == 48 and on_ray.skipped == here.skipped == {"unreadable image": 1}
    assert on_ray.validation_passed == on_ray.validated > 0
    a, b = catalog.load(tmp_path / "here"), catalog.load(tmp_path / "ray")
    assert a.items["id"].tolist() == b.items["id"].tolist()
    cosines = np.sum(a.store.vectors(np.arange(len(a))) * b.store.vectors(np.arange(len(b))), axis=1)
    assert cosines.min() >= 0.9999
    assert b.items["thumbnail"].notna().all()
