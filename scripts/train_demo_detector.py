#!/usr/bin/env python
"""Train the offline demo's garment detector and write it to data/demo_detector/ (weights, config, image processor,
SHA256SUMS, TRAINING.json).

    python scripts/train_demo_detector.py            # the shipped detector: seeded; ~35 minutes on 2 CPU cores
    python scripts/train_demo_detector.py --steps 5 --pool 32 --out /tmp/d --no-eval   # a smoke run, seconds

The model is a tiny Conditional DETR (the architecture of the default Hub detector, yainage90/fashion-object-
detection, with the same 7 classes), its backbone a small ResNet from transformers (no timm), trained from scratch
with DETR's own set loss (Hungarian matching, focal class loss, L1 and GIoU box losses, auxiliary decoder losses)
on generated multi-garment scenes (`stylishi.scenes`, training seeds only), flipped left-right at random. The scenes
are drawn once, passed through the detector's own image processor, and kept in memory (and in --pool-cache).
A dense auxiliary loss (each cell of the backbone's feature map classifies the garment over it, or background) gives
the random backbone a direct signal: without it the queries never left their starting places (README). Then the
confidence threshold with the best F1 on validation scenes (training-range seeds past the pool) is written into
the config as `detection_threshold`, and recall and precision at IoU 0.5 are measured on held-out scenes through
`stylishi.detector.Detector`, the same code the app runs. Needs scipy (requirements-dev.txt) for the matching.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import multiprocessing as mp
import random
import sys
import time
from pathlib import Path

import numpy as np

from stylishi.demo import SEEDS, write_checksums
from stylishi.scenes import LOOK_CLASSES, scene

log = logging.getLogger("train_demo_detector")

DETECTOR_DIR = Path(__file__).resolve().parents[1] / "data" / "demo_detector"
INPUT = {"shortest_edge": 144, "longest_edge": 192}  # a 320×240 webcam frame becomes 192×144
TRAIN_OFFSET = 800_000  # scenes use SEEDS[...] + 800_000 + n (the garment and shot seeds stay below)
FEATURES = "stage3"  # stride 16: a 12×9 grid of the 192×144 input, fine enough to place a cap
BACKBONE = dict(embedding_size=32, hidden_sizes=[32, 64, 128], depths=[1, 2, 2], layer_type="basic")
DETR = dict(d_model=96, encoder_layers=2, decoder_layers=3, encoder_attention_heads=4, decoder_attention_heads=4,
            encoder_ffn_dim=192, decoder_ffn_dim=192, num_queries=12)


def build(seed: int):
    import torch
    from transformers import ConditionalDetrConfig, ConditionalDetrForObjectDetection, ResNetConfig

    torch.manual_seed(seed)
    backbone = ResNetConfig(num_channels=3, out_features=[FEATURES], **BACKBONE)
    config = ConditionalDetrConfig(
        backbone_config=backbone, use_timm_backbone=False, num_labels=len(LOOK_CLASSES),
        id2label=dict(enumerate(LOOK_CLASSES)), label2id={c: i for i, c in enumerate(LOOK_CLASSES)},
        auxiliary_loss=True, dropout=0.0, **DETR)
    model = ConditionalDetrForObjectDetection(config)
    for p in model.parameters():  # transformers freezes a pretrained backbone's first stages; this one starts random
        p.requires_grad_(True)
    return model


def thaw_batch_norm(model) -> None:
    """Training from scratch needs the backbone's batch norm live (transformers freezes it, for a pretrained one):
    each frozen one becomes a real BatchNorm2d, with its values."""
    import torch

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child).__name__.endswith("FrozenBatchNorm2d"):
                bn = torch.nn.BatchNorm2d(child.weight.numel())
                with torch.no_grad():
                    for key in ("weight", "bias", "running_mean", "running_var"):
                        getattr(bn, key).copy_(getattr(child, key))
                parent._modules[name] = bn


def freeze_batch_norm(model) -> None:
    """Back to the frozen form transformers loads (the same weight names): the learnt statistics kept."""
    from transformers.models.conditional_detr.modeling_conditional_detr import replace_batch_norm

    replace_batch_norm(model.model.backbone)


def processor():
    from transformers import ConditionalDetrImageProcessor

    return ConditionalDetrImageProcessor(size=dict(INPUT))


def _draw(n: int) -> tuple[np.ndarray, list[list[int]], list[list[list[float]]]]:
    sc = scene(SEEDS["training"] + TRAIN_OFFSET + n)
    return (np.asarray(sc.image, np.uint8), [LOOK_CLASSES.index(g.label) for g in sc.garments],
            [list(g.box) for g in sc.garments])


def make_pool(n: int, workers: int, cache: str | None):
    """n training scenes as the processor's pixel values (float16) with their classes and boxes (cx, cy, w, h)."""
    path = Path(cache) / f"scenes-{n}-{INPUT['shortest_edge']}.npz" if cache else None
    if path and path.exists():
        data = np.load(path, allow_pickle=False)
        return data["pixels"], json.loads(str(data["targets"]))
    t0 = time.perf_counter()
    if workers > 1:
        with mp.get_context("fork").Pool(workers) as pool:
            drawn = pool.map(_draw, range(n), chunksize=32)
    else:
        drawn = [_draw(i) for i in range(n)]
    proc = processor()
    pixels = np.concatenate([proc(images=[d[0] for d in drawn[i:i + 64]], return_tensors="np")["pixel_values"]
                             .astype(np.float16) for i in range(0, n, 64)])
    targets = [{"labels": labels, "boxes": [[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]]
                                             for b in boxes]} for _, labels, boxes in drawn]
    log.info("drew %d training scenes in %.0f s", n, time.perf_counter() - t0)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, pixels=pixels, targets=json.dumps(targets))
    return pixels, targets


def train(args) -> Path:
    import torch

    torch.set_num_threads(args.threads)
    pixels, targets = make_pool(args.pool, args.workers, args.pool_cache)
    model = build(args.seed)
    thaw_batch_norm(model)
    model.train()
    # A dense auxiliary head on the backbone's feature map (thrown away after training): each cell learns the class of
    # the garment over it, or background. It gives the random backbone a direct signal; the set loss alone, reaching
    # it through the transformer, left every query at the same place (the first runs: README, "Shop the look").
    maps: dict = {}
    model.model.backbone.register_forward_hook(lambda module, inputs, output: maps.__setitem__("last", output[-1][0]))
    head = torch.nn.Conv2d(BACKBONE["hidden_sizes"][-1], len(LOOK_CLASSES) + 1, 1)
    opt = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=args.lr, weight_decay=1e-4)
    warm = max(1, args.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps))))
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    for step in range(args.steps):
        idx = [rng.randrange(len(targets)) for _ in range(args.batch)]
        flips = [rng.random() < 0.5 for _ in idx]
        batch = torch.from_numpy(pixels[idx].astype(np.float32))
        labels = []
        for k, (i, flip) in enumerate(zip(idx, flips)):
            boxes = torch.tensor(targets[i]["boxes"], dtype=torch.float32).reshape(-1, 4)
            if flip:
                batch[k] = batch[k].flip(-1)
                boxes[:, 0] = 1.0 - boxes[:, 0]
            labels.append({"class_labels": torch.tensor(targets[i]["labels"], dtype=torch.long), "boxes": boxes})
        out = model(pixel_values=batch, labels=labels)
        fmap = maps["last"]
        dense = torch.nn.functional.cross_entropy(head(fmap), cell_targets(labels, *fmap.shape[-2:]))
        loss = out.loss + args.aux_weight * dense
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        opt.step()
        sched.step()
        if args.checkpoint_every and step and step % args.checkpoint_every == 0:
            save(copy.deepcopy(model), Path(f"{args.out}-step{step}"), {"step": step})
        if step % 50 == 0 or step == args.steps - 1:
            parts = {k: round(float(v.detach()), 3) for k, v in out.loss_dict.items() if not k[-1].isdigit()}
            log.info("step %d/%d loss %.3f %s dense %.3f  %.0f s", step, args.steps, out.loss.item(), parts,
                     dense.item(), time.perf_counter() - t0)
    out_dir = Path(args.out)
    save(model, out_dir, {
        "command": "python scripts/train_demo_detector.py " + " ".join(sys.argv[1:]), "seed": args.seed,
        "steps": args.steps, "pool": args.pool, "batch": args.batch, "lr": args.lr, "aux_weight": args.aux_weight,
        "input": INPUT, "features": FEATURES,
        "backbone": BACKBONE, "detr": DETR, "classes": list(LOOK_CLASSES),
        "seconds": round(time.perf_counter() - t0), "seed_range": SEEDS["training"] + TRAIN_OFFSET})
    log.info("wrote %s", out_dir)
    return out_dir


def cell_targets(labels: list[dict], h: int, w: int):
    """Per cell of an h×w feature map: the class of the smallest garment box over the cell's centre, else
    background (the last class)."""
    import torch

    ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w
    target = torch.full((len(labels), h, w), len(LOOK_CLASSES), dtype=torch.long)
    for n, lab in enumerate(labels):
        boxes, classes = lab["boxes"], lab["class_labels"]
        order = torch.argsort(boxes[:, 2] * boxes[:, 3], descending=True)  # small boxes painted last, on top
        for i in order.tolist():
            cx, cy, bw, bh = boxes[i].tolist()
            inside_y = (ys >= cy - bh / 2) & (ys <= cy + bh / 2)
            inside_x = (xs >= cx - bw / 2) & (xs <= cx + bw / 2)
            target[n][inside_y[:, None] & inside_x[None, :]] = int(classes[i])
    return target


def save(model, out: Path, record: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    freeze_batch_norm(model)
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    processor().save_pretrained(out)
    (out / "TRAINING.json").write_text(json.dumps(record, indent=2) + "\n")
    write_checksums(out)


def pick_threshold(model_dir: Path, pool: int, scenes: int = 150) -> float:
    """The confidence threshold with the best F1 (a garment found at IoU ≥ 0.5, whatever its label) on validation
    scenes: training-range seeds past the training pool, never the held-out ones. Written into the detector's config
    as `detection_threshold`, which the app's Detector uses."""
    from stylishi.detector import Detector, iou

    det = Detector.load(model_dir, device="cpu")
    drawn = [scene(SEEDS["training"] + TRAIN_OFFSET + pool + n) for n in range(scenes)]
    answers = [det.detect(sc.image, threshold=0.05) for sc in drawn]
    best, best_f1 = 0.5, -1.0
    for threshold in np.arange(0.10, 0.61, 0.025):
        truth = found = predicted = right = 0
        for sc, hits in zip(drawn, answers):
            kept = [d for d in hits if d.score >= threshold]
            predicted += len(kept)
            truth += len(sc.garments)
            found += sum(any(iou(d.box, g.box) >= 0.5 for d in kept) for g in sc.garments)
            right += sum(any(iou(d.box, g.box) >= 0.5 for g in sc.garments) for d in kept)
        recall, precision = found / truth, right / max(predicted, 1)
        f1 = 2 * recall * precision / max(recall + precision, 1e-9)
        if f1 > best_f1:
            best, best_f1 = round(float(threshold), 3), f1
    log.info("detection threshold %.3f (F1 %.3f on %d validation scenes)", best, best_f1, scenes)
    config = json.loads((model_dir / "config.json").read_text())
    config["detection_threshold"] = best
    (model_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    record = json.loads((model_dir / "TRAINING.json").read_text())
    record.update(detection_threshold=best, validation_f1=round(best_f1, 4), validation_scenes=scenes)
    (model_dir / "TRAINING.json").write_text(json.dumps(record, indent=2) + "\n")
    write_checksums(model_dir)
    return best


def measure(model_dir: Path, scenes: int = 200, threshold: float | None = None) -> dict:
    """Recall (every garment found at IoU ≥ 0.5, with and without the right label) and precision on held-out
    scenes, through the app's own Detector (at its own threshold unless one is given)."""
    from stylishi.detector import Detector, iou

    det = Detector.load(model_dir, device="cpu")
    found = labelled = truth = predicted = correct = 0
    for n in range(scenes):
        sc = scene(SEEDS["heldout"] + TRAIN_OFFSET + n)
        hits = det.detect(sc.image, threshold=threshold)
        predicted += len(hits)
        truth += len(sc.garments)
        for g in sc.garments:
            best = max(hits, key=lambda d: iou(d.box, g.box), default=None)
            if best is not None and iou(best.box, g.box) >= 0.5:
                found += 1
                labelled += best.label == g.label
        correct += sum(any(iou(d.box, g.box) >= 0.5 and d.label == g.label for g in sc.garments) for d in hits)
    return {"scenes": scenes, "threshold": det.threshold if threshold is None else threshold,
            "garments": truth, "recall_iou50": found / truth,
            "recall_iou50_label": labelled / truth, "precision_iou50_label": correct / max(predicted, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(DETECTOR_DIR),
                    help="where to write the detector (default: data/demo_detector)")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--pool", type=int, default=4000, help="training scenes drawn")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--aux-weight", type=float, default=1.0, help="weight of the dense per-cell class loss")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for a model this small)")
    ap.add_argument("--workers", type=int, default=2, help="processes drawing the training scenes")
    ap.add_argument("--pool-cache", default=None, help="a folder to keep the drawn training scenes in")
    ap.add_argument("--checkpoint-every", type=int, default=0, help="also save the model every N steps (to OUT-stepN)")
    ap.add_argument("--no-eval", action="store_true", help="skip the measurement on held-out scenes")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    out = train(args)
    pick_threshold(out, args.pool, scenes=20 if args.no_eval else 150)
    if not args.no_eval:
        print(json.dumps(measure(out), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
