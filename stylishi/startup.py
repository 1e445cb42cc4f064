"""What the app serves, decided once at start-up: the index asked for, else the best thing that can be had.

    from stylishi.startup import open_service
    service = open_service(args.index, args.model, device=args.device)   # never hangs on a Hub that is away
    service.notice   # None for the index asked for, else one line for the page saying what is served and why

The policy, in order:

1. A local folder: verify and load it (with the model its manifest names).
2. A Hub dataset repo `owner/name[@rev]`: one short probe (STYLISHI_HUB_TIMEOUT, default 5 s; none at all with
   HF_HUB_OFFLINE=1), then `snapshot_download(repo_type="dataset", revision=rev)` into the standard Hugging Face
   cache, verify every checksum, load with the model the manifest names (at the revision it records). Asking for
   another model is refused with a message naming both.
3. The Hub away (or offline mode) but the index cached: serve the cached revision at once; the notice says which.
4. The index repo missing or away and nothing cached, but the source dataset (STYLISHI_DATASET) readable: build a
   starter index of its first STYLISHI_STARTER_ITEMS items (default 2,000) with the default model, with a progress
   bar, cache it under cache_dir()/starter/<dataset>@<rev>/ and serve it; the notice says it is a starter index.
   A starter built earlier is reused, also when the Hub is away later.
5. Nothing reachable: the offline demo (generated garments, tiny random CLIP), built once into cache_dir()/demo;
   the notice says it is the demo, what was tried, and how to point the app at a real index.

With the fallback off (fallback=False, or STYLISHI_NO_FALLBACK=1) steps 4 and 5 are skipped: the index asked for is
served (from the Hub or the cache) or one StyliShiError says what was tried and how to fix it.
`open_service("demo")` serves the offline demo on purpose (unless a folder named "demo" exists).
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

from . import catalog as catalog_mod
from .config import DEFAULT_MODEL, Settings, cache_dir
from .errors import ArtifactError, StyliShiError
from .hub import (cache_only, card_license, evict_corrupt, is_local_ref, offline_mode, probe, resolve_index, resolve_model,
                  snapshot_revision, split_ref)
from .service import SearchService

log = logging.getLogger(__name__)

DEMO = "demo"
Progress = Callable[[str, "float | None"], None]


class ModelMismatchError(ArtifactError):
    """An explicit model that is not the one the index was built with: a configuration error, never a fallback."""


def open_service(index: str | None = None, model: str | None = None, *, device: str = "auto",
                 mode: str | None = None, fallback: bool | None = None, starter_items: int | None = None,
                 progress: Progress | None = None) -> SearchService:
    """A ready SearchService for `index` (a folder, `owner/name[@rev]`, or "demo"), following the start-up policy.

    index, model, fallback and starter_items default to the settings (STYLISHI_INDEX, STYLISHI_MODEL,
    STYLISHI_NO_FALLBACK, STYLISHI_STARTER_ITEMS). `progress(message, fraction_or_None)` hears each step (and the
    starter build item by item); the console gets log lines and a tqdm bar either way.
    Raises ModelMismatchError for a model that does not fit the index, and StyliShiError when nothing can be served.
    """
    settings = Settings()
    index = str(index or settings.index).strip()
    model = (model or settings.model or "").strip() or None
    fallback = settings.fallback if fallback is None else bool(fallback)
    starter_items = settings.starter_items if starter_items is None else int(starter_items)
    run = _Run(settings, device, mode, progress)

    if index == DEMO and not Path(DEMO).exists():
        return run.ready(run.demo(f"This is the offline demo ({_DEMO_WHAT}), served because --index {DEMO} asked "
                                  f"for it. {_HOW_TO_REAL}"))
    if is_local_ref(index):
        service = run.local(index, model)
    else:
        service = run.hub(index, model)
        if service is None and fallback:
            service = run.starter(index, model, settings.dataset, starter_items)
    if service is not None:
        return run.ready(service)
    if not fallback:
        if is_local_ref(index):
            raise StyliShiError(_local_failure_message(index, run.tried))
        raise StyliShiError(_failure_message(index, run.tried))
    return run.ready(run.demo(_demo_notice(index, run.tried)))


# -- the steps --------------------------------------------------------------------------------------------------
_DEMO_WHAT = "384 generated garments and a tiny random model, so matches follow colour and shape, not fashion sense"
_HOW_TO_REAL = ("To serve a real catalog, start with --index OWNER/NAME (or STYLISHI_INDEX=OWNER/NAME) while the "
                "Hugging Face Hub is reachable, or --index DIR for a folder made with build_index.py.")


class _Run:
    """One start-up: what was tried (for the notice or the error) and whether the Hub is known to be away."""

    def __init__(self, settings: Settings, device: str, mode: str | None, progress: Progress | None):
        self.settings = settings
        self.device = device
        self.mode = mode
        self.progress = progress
        self.tried: list[str] = []
        self.hub_away: str | None = "offline mode is on (HF_HUB_OFFLINE=1)" if offline_mode() else None
        self.t0 = time.perf_counter()

    def step(self, message: str, fraction: float | None = None) -> None:
        log.info("%s", message)
        if self.progress is not None:
            try:
                self.progress(message, fraction)
            except Exception:  # noqa: BLE001 - a broken progress display must not stop the start-up
                log.debug("progress callback failed", exc_info=True)

    # 1. a folder
    def local(self, index: str, model: str | None) -> SearchService | None:
        self.step(f"Loading the catalog index from the folder {index}")
        try:
            with cache_only(self.hub_away is not None):
                return self.load(Path(index).expanduser(), model, source=index)
        except ModelMismatchError:
            raise
        except StyliShiError as exc:
            self.tried.append(f"the folder {index}: {exc}")
            return None

    # 2 and 3. a Hub repo, or its cached revision
    def hub(self, ref: str, model: str | None) -> SearchService | None:
        repo, rev = split_ref(ref)
        answer = None
        if self.hub_away is None:
            self.step(f"Asking the Hugging Face Hub for the dataset repo {ref}")
            answer = probe(repo, "dataset", rev, timeout=self.settings.hub_timeout)
            if answer.unreachable:
                self.hub_away = answer.error
                log.warning("the Hub is away (%s, after %.1f s): using the cache", answer.error, answer.seconds)
        if answer is not None and answer.ok:
            self.step(f"Downloading the index {ref} (commit {answer.sha[:12]}) into the Hugging Face cache")
            try:
                root = resolve_index(ref, local_files_only=False)
            except ArtifactError as exc:
                self.tried.append(f"the Hub dataset repo {ref}: {exc}")
            else:
                sha = snapshot_revision(root) or answer.sha
                try:
                    return self.load(root, model, source=f"{repo}@{sha}")
                except ModelMismatchError:
                    raise
                except StyliShiError as exc:
                    self.tried.append(f"the Hub dataset repo {repo} at {sha[:12]}: {exc}{_evicted(root, exc)}")
                    return None
        why = self.hub_away or (answer.error if answer is not None else "") or "the download failed"
        try:
            root = resolve_index(ref, local_files_only=True)
        except ArtifactError:
            self.tried.append(f"the Hub dataset repo {ref}: {why}, and no revision of it is cached here")
            return None
        sha = snapshot_revision(root) or "?"
        self.step(f"Using the cached revision {sha[:12]} of {ref} ({why})")
        try:
            with cache_only(self.hub_away is not None):
                service = self.load(root, model, source=f"{repo}@{sha}")
        except ModelMismatchError:
            raise
        except StyliShiError as exc:
            self.tried.append(f"the cached revision {sha[:12]} of {ref}: {exc}{_evicted(root, exc)}")
            return None
        service.notice = f"Serving cached revision {sha[:12]} of {repo} ({why})."
        return service

    # 4. a starter index
    def starter(self, index: str, model: str | None, dataset: str, items: int) -> SearchService | None:
        ds_repo, ds_rev = split_ref(dataset)
        starter_model = model or DEFAULT_MODEL
        answer = None
        if self.hub_away is None:
            self.step(f"Asking the Hub for the dataset {dataset}, to build a starter index")
            answer = probe(ds_repo, "dataset", ds_rev, timeout=self.settings.hub_timeout)
            if answer.unreachable:
                self.hub_away = answer.error
        why_index = self.tried[-1].split(": ", 1)[-1] if self.tried else "it could not be loaded"
        if answer is not None and answer.ok:
            out = cache_dir() / "starter" / f"{ds_repo}@{answer.sha}"
            try:
                service = self._cached_starter(out, starter_model, items)
                if service is None:
                    licence = answer.license or card_license(ds_repo, "dataset", answer.sha)
                    service = self._build_starter(out, ds_repo, answer.sha, licence, starter_model, items)
            except ModelMismatchError:
                raise
            except StyliShiError as exc:
                self.tried.append(f"a starter index from the dataset {ds_repo}: {exc}")
            else:
                service.notice = (f"Starter index of the first {len(service.catalog):,} items of {ds_repo} "
                                  f"(revision {answer.sha[:12]}), built here because the index {index} could not be "
                                  f"loaded: {why_index}. Build and push the full index with build_index.py "
                                  f"--push-to OWNER/NAME (see docs/hub.md).")
                return service
        else:
            why = self.hub_away or (answer.error if answer is not None else "")
            self.tried.append(f"a starter index from the dataset {ds_repo}: {why}")
        # The dataset cannot be read now: a starter built on an earlier start will do.
        for out in _starters_on_disk(ds_repo):
            try:
                with cache_only(True):
                    service = self._cached_starter(out, model, None)
            except ModelMismatchError:
                continue
            except StyliShiError as exc:
                log.warning("cached starter index %s not usable: %s", out, exc)
                continue
            if service is not None:
                sha = out.name.rsplit("@", 1)[-1]
                service.notice = (f"Starter index of the first {len(service.catalog):,} items of {ds_repo} "
                                  f"(revision {sha[:12]}, built on an earlier start), served from the cache because "
                                  f"the index {index} could not be loaded: {why_index}.")
                return service
        return None

    def _cached_starter(self, out: Path, model: str | None, items: int | None) -> SearchService | None:
        try:
            manifest = catalog_mod.read_manifest(out)
        except ArtifactError:
            return None
        source = manifest.get("source") or {}
        built_with = manifest["model"]["id"]
        if items is not None and source.get("starter_items") != items:
            return None  # built with another size: rebuild
        if model is not None and split_ref(model)[0] != built_with:
            if items is None:
                raise ModelMismatchError(f"starter {out} was built with {built_with}, not {model}")
            return None
        self.step(f"Loading the starter index {out}")
        return self.load(out, None, source=str(out))

    def _build_starter(self, out: Path, ds_repo: str, sha: str, licence: str | None, model: str,
                       items: int) -> SearchService:
        from . import builder
        from .embedder import Embedder

        self.step(f"Building a starter index of the first {items:,} items of {ds_repo} with {model}", 0.0)
        with cache_only(False):
            model_dir, model_id, revision = resolve_model(model)
        # Catalog vectors are always fp32 (the reference); queries then run in the app's mode.
        embedder = Embedder.load(model_dir, model_id=model_id, revision=revision, device=self.device, mode="fp32")
        tmp = out.with_name(f"{out.name}.partial-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        records = builder.dataset_records(ds_repo, revision=sha, split="train")
        source = {"kind": "hub-dataset", "id": ds_repo, "split": "train", "revision": sha, "licence": licence,
                  "limit": items, "starter_items": items}
        try:
            report = builder.build(self._counted(records, items), embedder, tmp, limit=items, source=source,
                                   progress=True)
            if report.validation_passed < report.validated:
                raise StyliShiError(f"the starter index failed its self-check ({report.validation_passed}/"
                                    f"{report.validated} sampled items found themselves first)")
            if out.exists():
                shutil.rmtree(out)
            out.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, out)
        except StyliShiError:
            raise
        except Exception as exc:  # datasets/network errors mid-stream: a reason, not a crash
            raise StyliShiError(f"building it failed ({type(exc).__name__}: {str(exc).strip()[:300]})") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.step(f"Starter index ready: {report.items:,} items in {report.seconds:.0f} s, cached in {out}", 1.0)
        del embedder
        return self.load(out, None, source=str(out))

    def _counted(self, records: Iterable, total: int) -> Iterator:
        every = max(1, total // 50)
        for n, record in enumerate(records, start=1):
            if n % every == 0:
                self.step(f"Starter index: {min(n, total):,}/{total:,} items read", min(1.0, n / total))
            yield record

    # 5. the offline demo
    def demo(self, notice: str) -> SearchService:
        from .builder import build_demo

        out = cache_dir() / DEMO
        if (out / catalog_mod.MANIFEST).exists():
            try:
                self.step(f"Loading the offline demo from {out}")
                return self.load(out, None, source=DEMO, notice=notice)
            except StyliShiError as exc:
                log.warning("the cached offline demo at %s is not usable (%s): building it again", out, exc)
        self.step(f"Building the offline demo into {out} (once; about 10 s)", 0.0)
        tmp = out.with_name(f"{out.name}.partial-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            build_demo(tmp, progress=True)
            shutil.rmtree(tmp / "catalog_images", ignore_errors=True)  # the generated source pictures
            if out.exists():
                shutil.rmtree(out)
            out.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self.load(out, None, source=DEMO, notice=notice)

    # -- shared -------------------------------------------------------------------------------------------------
    def load(self, root: Path, model: str | None, *, source: str, notice: str | None = None) -> SearchService:
        """Verify and load an index folder with the model its manifest names (an explicit other one is refused)."""
        import stylishi

        manifest = catalog_mod.read_manifest(root)
        built_with = str(manifest["model"]["id"])
        if model and not stylishi._same_model(model, built_with, root):
            raise ModelMismatchError(
                f"The index {source} was built with the model {built_with}, but the model {model} was asked for "
                f"(--model / STYLISHI_MODEL). Its vectors only make sense with {built_with}: drop --model (and "
                f"unset STYLISHI_MODEL) to use it, or build an index with {model}.")
        service = stylishi.load(root, model, device=self.device, mode=self.mode)
        service.source = source
        service.notice = notice
        return service

    def ready(self, service: SearchService) -> SearchService:
        emb, cat = service.embedder, service.catalog
        log.info("serving %s: %d items from %s, model %s%s (%s, %s), ready in %.1f s%s", service.source, len(cat),
                 cat.root, emb.model_id, f"@{emb.revision[:12]}" if emb.revision else "", emb.device, emb.mode,
                 time.perf_counter() - self.t0, f"; notice: {service.notice}" if service.notice else "")
        return service


def _starters_on_disk(ds_repo: str) -> list[Path]:
    """Starter indexes built earlier for this dataset, newest first."""
    folder = cache_dir() / "starter" / ds_repo
    parent, stem = folder.parent, folder.name
    if not parent.is_dir():
        return []
    found = [p for p in parent.glob(f"{stem}@*") if p.is_dir() and ".partial-" not in p.name]
    return sorted(found, key=lambda p: (p / catalog_mod.MANIFEST).stat().st_mtime
                  if (p / catalog_mod.MANIFEST).exists() else 0, reverse=True)


def _evicted(root: Path, exc: BaseException) -> str:
    """Drop damaged files of a Hub snapshot from the cache, so that the next start downloads them again."""
    if not isinstance(exc, ArtifactError) or snapshot_revision(root) is None:
        return ""
    try:
        manifest = catalog_mod.read_manifest(root)
    except ArtifactError:
        manifest = None
    removed = evict_corrupt(root, manifest)
    return (f" The damaged file(s) {', '.join(removed)} were removed from the cache; the next start downloads them "
            "again.") if removed else ""


def _demo_notice(index: str, tried: list[str]) -> str:
    return (f"This is the offline demo ({_DEMO_WHAT}). The catalog index {index} could not be loaded. Tried: "
            f"{_numbered(tried)}. {_HOW_TO_REAL}")


def _failure_message(index: str, tried: list[str]) -> str:
    return (f"Could not open the catalog index {index}, and the fallback to a starter index or the offline demo is "
            f"off (STYLISHI_NO_FALLBACK=1 or --no-fallback). Tried: {_numbered(tried)}. To fix it: check the repo id "
            "(OWNER/NAME[@REV], a dataset repo) and that the Hugging Face Hub is reachable from here (HF_ENDPOINT, "
            "proxy, HF_TOKEN for a private repo); start once online so the index is cached, after which "
            "HF_HUB_OFFLINE=1 starts from the cache; or build an index with `python build_index.py --out DIR` and "
            "pass --index DIR; or unset STYLISHI_NO_FALLBACK to serve a starter index or the offline demo instead.")


def _local_failure_message(index: str, tried: list[str]) -> str:
    why = tried[-1].split(": ", 1)[-1] if tried else "it could not be loaded"
    return (f"Could not open the catalog index folder {index}: {why.rstrip('.')}. The fallback to the offline demo is "
            "off (STYLISHI_NO_FALLBACK=1 or --no-fallback), so nothing is served. To fix it: rebuild the folder with "
            "`python build_index.py --out DIR` (or download it again) and pass --index DIR; or drop --no-fallback "
            "(unset STYLISHI_NO_FALLBACK) to serve the offline demo instead.")


def _numbered(tried: list[str]) -> str:
    if not tried:
        return "nothing could be tried"
    return "; ".join(f"({n}) {line.rstrip('.')}" for n, line in enumerate(tried, start=1))
