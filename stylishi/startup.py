"""What the app serves, decided once at start-up: the index asked for, else (when allowed) the best that can be had.

    from stylishi.startup import open_service
    service = open_service(settings=Settings.from_env(index=args.index))   # never hangs on a Hub that is away
    service.startup.headline()   # None for the index asked for, else one short line for the page
    service.startup.details()    # one line per source that failed or was skipped: why, and what to do

Start-up is data: a plan (the sources to try, in order) and one loop that tries each and records an `Attempt`;
the page notice and the start-up error are rendered from those records (`StartupReport`), nowhere else.

The sources, in order:

1. folder — a local index folder: verify and load it (with the model its manifest names).
2. hub — a Hub dataset repo `owner/name[@rev]`: one short probe (STYLISHI_HUB_TIMEOUT, default 5 s; none at all
   with HF_HUB_OFFLINE=1), then `snapshot_download` into the Hugging Face cache, verify every checksum, load with
   the model the manifest names (at the revision it records).
3. cache — the Hub away (or offline mode): the cached revision of that repo, loaded from the cache only.
4. starter — a starter index of the first STYLISHI_STARTER_ITEMS items of STYLISHI_DATASET, built with the default
   model and cached under cache_dir()/starter/<dataset>@<rev>/ (one built earlier is reused, also offline).
5. demo — the offline demo (generated garments, a tiny CLIP), built once into cache_dir()/demo.

Steps 4 and 5 are the fallback. It is on for the default index only: an index a person named (--index or
STYLISHI_INDEX) that cannot be loaded is an error, unless --fallback starter|demo (STYLISHI_FALLBACK) asks for it;
--fallback none / --no-fallback / STYLISHI_NO_FALLBACK=1 turns it off for the default too. A model that does not fit
the index (ModelMismatchError) is a configuration error, never a reason to fall back. `open_service("demo")` serves
the offline demo on purpose (unless a folder named "demo" exists).
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, TypeVar

from . import catalog as catalog_mod, focus, look
from .config import DEFAULT_MODEL, Settings, cache_dir
from .errors import ArtifactError, ModelError, ModelMismatchError, StyliShiError
from .hub import card_license, evict_corrupt, is_local_ref, offline_mode, probe, resolve_index, snapshot_revision, \
    split_ref
from .service import SearchService, check_compatible, load

log = logging.getLogger(__name__)

DEMO = "demo"
SOURCES = ("folder", "hub", "cache", "starter", "demo")
Progress = Callable[[str, "float | None"], None]
T = TypeVar("T")


# -- the records ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Attempt:
    """One source tried at start-up, and how it went."""

    source: str  # "folder" | "hub" | "cache" | "starter" | "demo"
    target: str  # what was tried: a folder, "owner/name[@rev]", the starter's dataset, "demo"
    outcome: str  # "served" | "failed" | "skipped"
    reason: str = ""  # why it failed or was skipped ("" when served)
    fix: str = ""  # what a person can do about it
    note: str = ""  # when served: what exactly (the cached revision, the starter's size and revision)


# What to do when a source fails and its own message does not say.
FIX_FOLDER = ("rebuild the folder with `python build_index.py --out DIR` (or download it again) and pass --index DIR")
FIX_HUB = ("check the repo id (--index OWNER/NAME[@REV], a dataset repo) and that the Hugging Face Hub is reachable "
           "from here (HF_ENDPOINT, a proxy, HF_TOKEN for a private repo)")
FIX_CACHE = "start once while the Hub is reachable, so that the index is cached; then HF_HUB_OFFLINE=1 starts from it"
FIX_STARTER = "let the app reach the Hub once (the dataset STYLISHI_DATASET), or build an index yourself"
NO_FALLBACK = ("Nothing is served in its place: the fallback to a starter index or the offline demo is off for an "
               "index named with --index or STYLISHI_INDEX, and with --fallback none, --no-fallback or "
               "STYLISHI_NO_FALLBACK=1. To serve the offline demo when it cannot be loaded, add --fallback demo "
               "(STYLISHI_FALLBACK=demo); to serve your own catalog, build an index with "
               "`python build_index.py --out DIR` and pass --index DIR.")
_WHAT = {"folder": "the folder {}", "hub": "the Hub dataset repo {}", "cache": "the cached copy of {}",
         "starter": "a starter index from the dataset {}", "demo": "the offline demo"}


@dataclass(frozen=True)
class StartupReport:
    """Every attempt of one start-up; the page notice and the start-up error are rendered from it, and only here."""

    asked_for: str
    attempts: tuple[Attempt, ...]
    fallback: str = "none"  # the fallback that was in force: none / starter / demo

    @property
    def served(self) -> Attempt | None:
        return next((a for a in self.attempts if a.outcome == "served"), None)

    def headline(self) -> str | None:
        """One short line for the page; None when what was asked for is served."""
        served = self.served
        if served is None or served is self.attempts[0]:
            return None
        if served.source == "cache":
            hub = next((a for a in self.attempts if a.source == "hub"), None)
            why = f": {_first_sentence(hub.reason)}" if hub is not None and hub.reason else ""
            return f"Serving the cached revision {served.note[:12]} of {split_ref(served.target)[0]}{why}."
        if served.source == "starter":
            return (f"Starter index of {served.note}: the index {self.asked_for} could not be loaded. Build and push "
                    "the full index with build_index.py --push-to OWNER/NAME (see docs/hub.md).")
        if served.source == "demo":
            return f"Offline demo: the catalog index {self.asked_for} could not be loaded."
        return f"Serving {_WHAT[served.source].format(served.target)}, not {self.asked_for}."

    def details(self) -> list[str]:
        """One line per failed or skipped attempt: what was tried, why it did not serve, and what to do."""
        lines = []
        for a in self.attempts:
            if a.outcome == "served":
                continue
            what = _WHAT[a.source].format(a.target)
            skipped = "skipped: " if a.outcome == "skipped" else ""
            line = f"{what[0].upper()}{what[1:]}: {skipped}{a.reason.strip().rstrip('.')}."
            lines.append(line + (f" To fix it: {a.fix.rstrip('.')}." if a.fix else ""))
        return lines

    def error(self) -> str:
        """The one start-up error, when nothing could be served."""
        tried = " ".join(f"({n}) {line}" for n, line in enumerate(self.details(), start=1)) or "(nothing to try)"
        tail = NO_FALLBACK if self.fallback == "none" else "Nothing could be served in its place either."
        return f"Could not open the catalog index {self.asked_for}. Tried: {tried} {tail}"


class Failed(StyliShiError):
    """A source that could not serve, with the reason and the fix kept apart (for the records)."""

    outcome = "failed"

    def __init__(self, reason: str, fix: str = ""):
        super().__init__(reason)
        self.reason, self.fix = reason, fix


class Skipped(Failed):
    """A source not tried at all (for example the Hub, in offline mode)."""

    outcome = "skipped"


@dataclass
class Served:
    service: SearchService
    note: str = ""


@dataclass(frozen=True)
class Step:
    source: str
    target: str


Try = Callable[[Step], Served]


# -- the plan and the loop --------------------------------------------------------------------------------------------
def plan(settings: Settings) -> tuple[Step, ...]:
    """The sources to try for these settings, in order."""
    index, fallback = settings.index, settings.fallback_for_index()
    if index == DEMO and not Path(DEMO).exists():
        return (Step("demo", DEMO),)
    if is_local_ref(index):
        steps = [Step("folder", index)]
    else:
        steps = [Step("hub", index), Step("cache", index)]
        if fallback in ("starter", "demo"):
            steps.append(Step("starter", settings.dataset))
    if fallback == "demo":
        steps.append(Step("demo", DEMO))
    return tuple(steps)


def run_plan(steps: tuple[Step, ...], tries: Mapping[str, Try], *, asked_for: str,
             fallback: str = "none") -> tuple[Served | None, StartupReport]:
    """Try each step in order until one serves; every try is recorded. A model mismatch stops everything."""
    attempts: list[Attempt] = []
    served = None
    for step in steps:
        try:
            served = tries[step.source](step)
        except ModelMismatchError:
            raise
        except Failed as exc:
            attempts.append(Attempt(step.source, step.target, exc.outcome, exc.reason, exc.fix))
            continue
        except StyliShiError as exc:
            attempts.append(Attempt(step.source, step.target, "failed", str(exc),
                                    FIX_FOLDER if step.source == "folder" else ""))
            continue
        attempts.append(Attempt(step.source, step.target, "served", note=served.note))
        break
    return served, StartupReport(asked_for, tuple(attempts), fallback)


def open_service(index: str | None = None, model: str | None = None, *, device: str | None = None,
                 mode: str | None = None, fallback: str | bool | None = None, starter_items: int | None = None,
                 progress: Progress | None = None, settings: Settings | None = None,
                 tries: Mapping[str, Try] | None = None) -> SearchService:
    """A ready SearchService following the start-up policy; `service.startup` holds the report.

    The arguments override `settings` (default: Settings.from_env(), every setting checked): index is a folder,
    `owner/name[@rev]` or "demo"; fallback is none/starter/demo (True = demo, False = none). `progress(message,
    fraction_or_None)` hears each step; `tries` replaces how a source is tried (tests). Raises SettingError for a
    bad setting, ModelMismatchError for a model that does not fit the index, and StyliShiError (the report's
    error()) when nothing can be served.
    """
    settings = (settings or Settings.from_env()).merged(index=index, model=model, device=device, embed_mode=mode,
                                                        fallback=fallback, starter_items=starter_items)
    start = _Start(settings, progress)
    fallback_in_force = settings.fallback_for_index()
    served, report = run_plan(plan(settings), {**start.tries(), **(tries or {})}, asked_for=settings.index,
                              fallback=fallback_in_force)
    if served is None:
        raise StyliShiError(report.error())
    service = served.service
    service.startup, service.notice = report, report.headline()
    service.looker = look.Looker(look.choose_detector(settings.detector,
                                                      serving_demo=look.is_demo_catalog(service.catalog.manifest)),
                                 device=settings.device)
    service.focus = focus.Focus(service.looker, focus.choose_focus(settings.focus, service.looker.choice))
    emb, cat = service.embedder, service.catalog
    log.info("serving %s: %d items from %s, model %s%s (%s, %s), ready in %.1f s", service.source, len(cat), cat.root,
             emb.model_id, f"@{emb.revision[:12]}" if emb.revision else "", emb.device, emb.mode,
             time.perf_counter() - start.t0)
    if service.notice:
        log.warning("%s", service.notice)
        for line in report.details():
            log.warning("  %s", line)
    return service


# -- how each source is tried -----------------------------------------------------------------------------------------
class _Start:
    """One start-up's state: whether the Hub is known to be away (then everything reads the cache only)."""

    def __init__(self, settings: Settings, progress: Progress | None):
        self.settings = settings
        self.progress = progress
        self.local_files_only = offline_mode()
        self.hub_away = "offline mode is on (HF_HUB_OFFLINE=1)" if self.local_files_only else ""
        self.failed_download: Path | None = None
        self.t0 = time.perf_counter()

    def tries(self) -> dict[str, Try]:
        return {"folder": self.folder, "hub": self.hub, "cache": self.cache, "starter": self.starter,
                "demo": self.demo}

    def step(self, message: str, fraction: float | None = None) -> None:
        log.info("%s", message)
        if self.progress is not None:
            try:
                self.progress(message, fraction)
            except Exception:  # noqa: BLE001 - a broken progress display must not stop the start-up
                log.debug("progress callback failed", exc_info=True)

    def _probe(self, repo: str, rev: str | None):
        answer = probe(repo, "dataset", rev, timeout=self.settings.hub_timeout)
        if answer.unreachable:
            self.local_files_only, self.hub_away = True, answer.error
            log.warning("the Hub is away (%s, after %.1f s): using the cache", answer.error, answer.seconds)
        return answer

    # 1. a folder
    def folder(self, step: Step) -> Served:
        self.step(f"Loading the catalog index from the folder {step.target}")
        return Served(self.load(Path(step.target).expanduser(), source=step.target))

    # 2. a Hub repo
    def hub(self, step: Step) -> Served:
        if self.local_files_only:
            raise Skipped(self.hub_away, "unset HF_HUB_OFFLINE to download it")
        repo, rev = split_ref(step.target)
        self.step(f"Asking the Hugging Face Hub for the dataset repo {step.target}")
        answer = self._probe(repo, rev)
        if not answer.ok:
            raise Failed(answer.error, FIX_HUB)
        self.step(f"Downloading the index {step.target} (commit {answer.sha[:12]}) into the Hugging Face cache")
        root = resolve_index(step.target, local_files_only=False)
        self.failed_download = root  # until it loads: the cache step then knows this snapshot failed
        served = self.snapshot(root, repo, snapshot_revision(root) or answer.sha)
        self.failed_download = None
        return served

    # 3. its cached revision
    def cache(self, step: Step) -> Served:
        if self.failed_download is not None:
            raise Skipped("the revision in the cache is the download that failed its check above")
        try:
            root = resolve_index(step.target, local_files_only=True)
        except ArtifactError:
            raise Failed("no revision of it is cached here", FIX_CACHE) from None
        sha = snapshot_revision(root) or "?"
        self.step(f"Using the cached revision {sha[:12]} of {step.target}")
        return self.snapshot(root, split_ref(step.target)[0], sha)

    def snapshot(self, root: Path, repo: str, sha: str) -> Served:
        """Load a Hub snapshot; one that fails its checksums is evicted from the cache (fetched again next start)."""
        try:
            return Served(self.load(root, source=f"{repo}@{sha}"), note=sha)
        except ModelMismatchError:
            raise
        except StyliShiError as exc:
            raise Failed(f"its revision {sha[:12]}: {exc}{_evicted(root, exc)}") from exc

    # 4. a starter index
    def starter(self, step: Step) -> Served:
        ds_repo, ds_rev = split_ref(step.target)
        items, model = self.settings.starter_items, self.settings.model or None
        why = self.hub_away
        if not self.local_files_only:
            self.step(f"Asking the Hub for the dataset {step.target}, to build a starter index")
            answer = self._probe(ds_repo, ds_rev)
            why = answer.error
            if answer.ok:
                out = cache_dir() / "starter" / f"{ds_repo}@{answer.sha}"
                try:  # (no model mismatch here: a starter built with another model is built again)
                    service = self._cached_starter(out, model, items) or \
                        self._build_starter(out, ds_repo, answer.sha, answer.license, model or DEFAULT_MODEL, items)
                except StyliShiError as exc:
                    why = str(exc)
                else:
                    return Served(service, f"the first {len(service.catalog):,} items of {ds_repo} "
                                           f"(revision {answer.sha[:12]})")
        # The dataset cannot be read (or built from) now: a starter built on an earlier start will do.
        for out in _starters_on_disk(ds_repo):
            try:
                service = self._cached_starter(out, model, None)
            except ModelMismatchError:
                continue
            except StyliShiError as exc:
                log.warning("cached starter index %s not usable: %s", out, exc)
                continue
            if service is not None:
                sha = out.name.rsplit("@", 1)[-1]
                return Served(service, f"the first {len(service.catalog):,} items of {ds_repo} (revision "
                                       f"{sha[:12]}, built on an earlier start)")
        raise Failed(why or "it could not be built", FIX_STARTER)

    def _cached_starter(self, out: Path, model: str | None, items: int | None) -> SearchService | None:
        try:
            manifest = catalog_mod.read_manifest(out)
        except ArtifactError:
            return None
        if items is not None and (manifest.get("source") or {}).get("starter_items") != items:
            return None  # built with another size: rebuild
        try:
            check_compatible(manifest, model=model, root=out, source=f"starter {out}")
        except ModelMismatchError:
            if items is None:
                raise
            return None  # built with another model: rebuild
        self.step(f"Loading the starter index {out}")
        return self.load(out, source=str(out), model=None)

    def _build_starter(self, out: Path, ds_repo: str, sha: str, licence: str | None, model: str,
                       items: int) -> SearchService:
        from . import builder
        from .embedder import Embedder
        from .hub import resolve_model

        self.step(f"Building a starter index of the first {items:,} items of {ds_repo} with {model}", 0.0)
        model_dir, model_id, revision = resolve_model(model, local_files_only=False)
        # Catalog vectors are always fp32 (the reference); queries then run in the app's mode.
        embedder = Embedder.load(model_dir, model_id=model_id, revision=revision, device=self.settings.device,
                                 mode="fp32")
        every = max(1, items // 50)

        def read(n: int) -> None:
            if n % every == 0:
                self.step(f"Starter index: {min(n, items):,}/{items:,} items read", min(1.0, n / items))

        def build(tmp: Path):
            try:
                report = builder.build_from_dataset(
                    ds_repo, embedder, tmp, revision=sha, limit=items, on_record=read, progress=True,
                    licence=licence or card_license(ds_repo, "dataset", sha), source={"starter_items": items})
            except StyliShiError:
                raise
            except Exception as exc:  # datasets/network errors mid-stream: a reason, not a crash
                raise StyliShiError(f"building it failed ({type(exc).__name__}: {str(exc).strip()[:300]})") from exc
            if report.validation_passed < report.validated:
                raise StyliShiError(f"the starter index failed its self-check ({report.validation_passed}/"
                                    f"{report.validated} sampled items found themselves first)")
            return report

        report = build_then_replace(out, build)
        self.step(f"Starter index ready: {report.items:,} items in {report.seconds:.0f} s, cached in {out}", 1.0)
        del embedder
        return self.load(out, source=str(out), model=None)

    # 5. the offline demo
    def demo(self, step: Step) -> Served:
        from .builder import build_demo
        from .demo import is_current_demo

        out = cache_dir() / DEMO
        if (out / catalog_mod.MANIFEST).exists():
            try:
                if not is_current_demo(catalog_mod.read_manifest(out)):
                    # An older release's demo (e.g. the random tiny model): its results would not be this one's.
                    raise ArtifactError("it was built by an older version of the demo")
                self.step(f"Loading the offline demo from {out}")
                return Served(self.load(out, source=DEMO, model=None))
            except (ArtifactError, ModelError) as exc:  # damaged or from another version: build it again
                log.warning("the cached offline demo at %s is not usable (%s): building it again", out, exc)
        self.step(f"Building the offline demo into {out} (once)", 0.0)

        def build(tmp: Path) -> None:
            build_demo(tmp, progress=True)
            shutil.rmtree(tmp / "catalog_images", ignore_errors=True)  # the generated source pictures

        build_then_replace(out, build)
        return Served(self.load(out, source=DEMO, model=None))

    # -- shared ---------------------------------------------------------------------------------------------------
    def load(self, root: Path, *, source: str, model: str | None | bool = True) -> SearchService:
        """Verify and load an index folder with the model its manifest names (an explicit other one is refused).

        model=True: the model of the settings (--model); None: the index's own.
        """
        model = (self.settings.model or None) if model is True else model
        return load(root, model, device=self.settings.device, mode=self.settings.embed_mode,
                    local_files_only=self.local_files_only, source=source)


def build_then_replace(out: Path, build: Callable[[Path], T]) -> T:
    """Build into a temporary sibling folder, then put it in place of `out`: a half-built index is never served."""
    tmp = out.with_name(f"{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        result = build(tmp)
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


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


def _first_sentence(text: str) -> str:
    head = text.strip().split(". ", 1)[0].rstrip(".")
    return head[:1].lower() + head[1:]
