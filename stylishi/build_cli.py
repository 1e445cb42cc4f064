"""Build a StyliShi catalog index from a Hub dataset, a local image folder, or the offline demo.

Examples:
  python build_index.py --demo --out demo_index                      # offline: garments + the trained tiny CLIP
  python build_index.py --images photos/ --out my_index              # a folder (+ optional metadata.csv)
  python build_index.py --dataset ashraq/fashion-product-images-small --limit 2000 --out fashion_2k

Share it on the Hugging Face Hub (a dataset repo, created if needed, with a dataset card; token from HF_TOKEN or
`hf auth login`), then serve it anywhere with `python app.py --index OWNER/NAME`:
  python build_index.py --dataset ashraq/fashion-product-images-small --out fashion_full --push-to OWNER/NAME
  python build_index.py --out fashion_full --push-to OWNER/NAME --push-only   # push a folder built earlier
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from .config import DEFAULT_DATASET, DEFAULT_MODEL, set_threads


def parse_args(argv: list[str] | None = None, prog: str | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--dataset", metavar="HUB_ID", default=None,
                     help=f"Hub dataset with an image column, read streaming (default: {DEFAULT_DATASET})")
    src.add_argument("--images", metavar="DIR",
                     help="local folder of JPEG/PNG/WebP pictures, any depth; an optional metadata.csv with a "
                          "file_name column (paths relative to DIR) adds id, name, category, colour, gender, ...")
    src.add_argument("--demo", action="store_true",
                     help="offline demo: generate garment pictures, copy the trained tiny CLIP (data/demo_model) "
                          "under --out, then build")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the index artifact to")
    p.add_argument("--split", default="train", help="dataset split (default: train)")
    p.add_argument("--revision", default=None, help="dataset revision (branch, tag or commit) to read")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="index at most N items (default: all)")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"CLIP or SigLIP checkpoint: Hub id[@rev] or local folder (default: {DEFAULT_MODEL}; "
                        "openai/clip-vit-base-patch32, google/siglip-base-patch16-224 and, for queries in other "
                        "languages, google/siglip-base-patch16-256-multilingual also work)")
    p.add_argument("--batch-size", type=int, default=32, help="images per embedding batch (default: 32)")
    p.add_argument("--index-factory", default="auto",
                   help='FAISS index_factory string, inner product. "auto" (default) picks by item count: exact "Flat" '
                        'up to 20k items, "HNSW32,SQ8" up to 400k, "IVF<4*sqrt(n)>,SQ8" above; search parameters are '
                        'tuned to recall@10 >= 0.95 and recorded in the manifest. Any other string, e.g. "Flat", '
                        '"HNSW32", "IVF1024,SQ8", is used as given')
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps (env STYLISHI_DEVICE; default: auto)")
    p.add_argument("--embed-mode", default="auto", choices=("auto", "fp32", "bf16", "int8"),
                   help="how the catalog's pictures are embedded. auto (default): the fastest CPU path (OpenVINO, "
                        "then bf16) that stays faithful to fp32 on the catalog's own first 128 pictures (every "
                        "cosine >= 0.999, top-10 neighbours >= 95%% the same), else fp32; the verdict is printed and "
                        "kept in the manifest. fp32: the reference. bf16, int8: as asked, unchecked")
    p.add_argument("--threads", default=None, help="torch/FAISS threads (env STYLISHI_THREADS; default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    scale = p.add_argument_group("beyond one machine (requirements-scale.txt; docs/scale.md)")
    scale.add_argument("--milvus", metavar="URI", default=None,
                       help="also write the vectors and filterable metadata into a Milvus collection, which the app "
                            "then searches: a local path ending in .db (Milvus Lite) or http(s)://host:19530 (token "
                            "from MILVUS_TOKEN, never recorded). The artifact folder is written as usual")
    scale.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                       help="decode and embed with Ray Data (an actor pool, one model per worker, a GPU each where "
                            "the cluster has them): no ADDRESS starts a local Ray on this machine's cores, else the "
                            "cluster's address (ray://host:10001 or auto). Writes the same artifact")
    scale.add_argument("--milvus-collection", metavar="NAME", default=None,
                       help="the Milvus collection to (re)create (default: stylishi_catalog)")
    hub = p.add_argument_group("sharing on the Hugging Face Hub")
    hub.add_argument("--push-to", metavar="OWNER/NAME", default=None,
                     help="after a build that passes validation, upload the index to this Hub dataset repo (created "
                          "if needed) with a dataset card README.md; needs a write token (HF_TOKEN or `hf auth login`)")
    hub.add_argument("--private", action="store_true", help="create the --push-to repo as private")
    hub.add_argument("--push-only", action="store_true",
                     help="do not build: verify the index already in --out and push it (with --push-to)")
    return p.parse_args(argv)


OFFLINE_MODEL_HINT = ("Offline, embed with a model that is already here: the offline demo's (build_index.py --demo "
                      "--out demo_index, then --model demo_index/model), or one in the Hugging Face cache.")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = parse_args(argv, prog)
    # A build prints its progress bar, what it skipped (warnings) and its summary; INFO lines would be noise.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from .config import Settings
    from .errors import SettingError

    try:  # every setting checked before any work: one line naming it
        settings = Settings.from_env(device=args.device, threads=args.threads, embed_mode=args.embed_mode)
    except SettingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.push_only and not args.push_to:
        print("error: --push-only needs --push-to OWNER/NAME", file=sys.stderr)
        return 2
    if args.push_to:  # before any work: an hour-long build must not end in "no token"
        from .hub import NO_TOKEN_MESSAGE, token_or_none

        if not token_or_none():
            print(f"error: {NO_TOKEN_MESSAGE}", file=sys.stderr)
            return 2
    milvus = None
    if args.milvus_collection and not args.milvus:
        print("error: --milvus-collection needs --milvus URI", file=sys.stderr)
        return 2
    if args.milvus:  # before any work: a build must not end in "pymilvus is not installed"
        from . import milvus_store

        if not milvus_store.available():
            print(f"error: --milvus needs pymilvus and milvus-lite. {milvus_store.INSTALL_HINT}", file=sys.stderr)
            return 2
        milvus = {"uri": args.milvus, "collection": args.milvus_collection or milvus_store.DEFAULT_COLLECTION}
    if args.ray:
        from . import ray_build

        if not ray_build.available():
            print(f"error: --ray needs Ray Data. {ray_build.INSTALL_HINT}", file=sys.stderr)
            return 2
        if args.demo:
            print("error: --ray builds from --images or --dataset; the demo is built in one process", file=sys.stderr)
            return 2
    set_threads(settings.threads)
    from . import builder
    from .embedder import Embedder
    from .errors import StyliShiError
    from .hub import resolve_model

    try:
        if args.push_only:
            report = None
        elif args.demo:
            report = builder.build_demo(args.out, limit=args.limit, progress=not args.no_progress, milvus=milvus)
        else:
            # The folder first: a wrong path is said at once, not after a model download.
            records = builder.folder_records(args.images) if args.images else None
            try:
                model_dir, model_id, revision = resolve_model(args.model)
            except StyliShiError as exc:
                raise StyliShiError(f"{exc} {OFFLINE_MODEL_HINT}" if os.environ.get("HF_HUB_OFFLINE") else str(exc))
            fast = args.embed_mode == "auto" and not args.ray  # the build gate picks the path (builder.build)
            with builder.quiet_frameworks():
                embedder = Embedder.load(model_dir, model_id=model_id, revision=revision, device=settings.device,
                                         mode="fp32" if args.embed_mode == "auto" else args.embed_mode)
            if records is not None:
                report = builder.build(records, embedder, args.out, limit=args.limit, batch_size=args.batch_size,
                                       factory=args.index_factory, source={"kind": "folder", "path": args.images},
                                       progress=not args.no_progress, milvus=milvus, ray=args.ray, fast=fast)
            else:
                dataset = args.dataset or DEFAULT_DATASET
                facts = _dataset_facts(dataset, args.revision)
                report = builder.build_from_dataset(dataset, embedder, args.out, split=args.split, limit=args.limit,
                                                    revision=facts["revision"], licence=facts["licence"],
                                                    batch_size=args.batch_size, factory=args.index_factory,
                                                    progress=not args.no_progress, milvus=milvus,
                                                    ray=args.ray, fast=fast)
    except StyliShiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if report is not None:
        print(report.summary())
        if report.validation_passed < report.validated:
            print(f"error: validation failed for {report.failures}", file=sys.stderr)
            return 1
    if args.push_to:
        return push(args.out, args.push_to, private=args.private)
    return 0


def push(out: str, repo_id: str, *, private: bool = False) -> int:
    """Verify the index in `out`, write its dataset card and upload it to the Hub dataset repo `repo_id`."""
    from .errors import StyliShiError
    from .hub import push_index

    try:
        url = push_index(out, repo_id, private=private)
    except StyliShiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"pushed to https://huggingface.co/datasets/{repo_id} ({url})")
    print(f"serve it with: python app.py --index {repo_id}")
    return 0


def _dataset_facts(dataset: str, revision: str | None) -> dict:
    """The commit the dataset revision points to (read at exactly that commit) and its card's licence."""
    from .hub import card_license, probe

    answer = probe(dataset, "dataset", revision, timeout=30)
    if answer.ok:
        return {"revision": answer.sha, "licence": answer.license or card_license(dataset, "dataset", answer.sha)}
    logging.getLogger("build_index").warning("could not ask the Hub about %s (%s)", dataset, answer.error)
    return {"revision": revision, "licence": None}
