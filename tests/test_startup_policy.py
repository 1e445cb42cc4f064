"""The start-up policy as data, in milliseconds: the plan for each setting, the loop's records, the rendered notice
and error, and every setting checked before anything loads. The sources themselves are replaced by small functions
(`tries`); the real ones run end to end in tests/test_hub.py and tests/test_faults.py.
"""
from __future__ import annotations

import types

import pytest

from stylishi.config import DEFAULT_DATASET, DEFAULT_INDEX_REPO, EMBED_MODES, Settings
from stylishi.errors import SettingError, StyliShiError
from stylishi.startup import (FIX_FOLDER, NO_FALLBACK, Attempt, Failed, ModelMismatchError, Served, Skipped,
                              StartupReport, Step, open_service, plan, run_plan)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No STYLISHI_* setting from the machine running the tests; a cache folder of our own."""
    import os

    for name in list(os.environ):
        if name.startswith("STYLISHI_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("STYLISHI_CACHE", str(tmp_path / "cache"))


class FakeCatalog(list):
    root = "/x"
    manifest: dict = {}  # not a demo: open_service picks shop the look's detector by it


def fake_service(source: str = "") -> types.SimpleNamespace:
    """What open_service needs of a service to log it and hang the report on it."""
    embedder = types.SimpleNamespace(model_id="m", revision=None, device="cpu", mode="fp32")
    return types.SimpleNamespace(source=source, embedder=embedder, catalog=FakeCatalog([1, 2, 3]), notice=None,
                                 startup=None)


class Recorder:
    """Tries that answer as scripted and remember the order they were called in."""

    def __init__(self, **answers):
        self.answers = answers
        self.calls: list[tuple[str, str]] = []

    def tries(self):
        return {source: (lambda step, source=source: self.answer(source, step)) for source in
                ("folder", "hub", "cache", "starter", "demo")}

    def answer(self, source: str, step: Step) -> Served:
        self.calls.append((source, step.target))
        answer = self.answers.get(source, Failed(f"{source} is not there"))
        if isinstance(answer, BaseException):
            raise answer
        return answer


# -- the plan -------------------------------------------------------------------------------------------------------
def sources(settings: Settings) -> list[str]:
    return [step.source for step in plan(settings)]


def test_the_default_index_falls_back_to_a_starter_index_then_the_demo():
    settings = Settings.from_env()
    assert settings.index == DEFAULT_INDEX_REPO and not settings.index_named
    assert plan(settings) == (Step("hub", DEFAULT_INDEX_REPO), Step("cache", DEFAULT_INDEX_REPO),
                              Step("starter", DEFAULT_DATASET), Step("demo", "demo"))


def test_a_named_index_has_no_fallback_unless_one_is_asked_for(monkeypatch, tmp_path):
    assert sources(Settings.from_env(index="owner/idx")) == ["hub", "cache"]
    assert sources(Settings.from_env(index="owner/idx", fallback="starter")) == ["hub", "cache", "starter"]
    assert sources(Settings.from_env(index="owner/idx", fallback="demo")) == ["hub", "cache", "starter", "demo"]
    assert sources(Settings.from_env(index=str(tmp_path))) == ["folder"]
    assert sources(Settings.from_env(index=str(tmp_path), fallback="demo")) == ["folder", "demo"]
    assert sources(Settings.from_env(index=str(tmp_path), fallback="starter")) == ["folder"]  # starters are for Hub
    monkeypatch.setenv("STYLISHI_INDEX", "owner/idx")  # named by the environment: the same
    assert sources(Settings.from_env()) == ["hub", "cache"]
    monkeypatch.setenv("STYLISHI_FALLBACK", "demo")
    assert sources(Settings.from_env()) == ["hub", "cache", "starter", "demo"]
    assert sources(Settings.from_env(fallback="none")) == ["hub", "cache"]  # the flag wins over the env


def test_the_fallback_can_be_turned_off_for_the_default_index(monkeypatch):
    assert sources(Settings.from_env(fallback="none")) == ["hub", "cache"]
    assert sources(Settings.from_env(fallback=False)) == ["hub", "cache"]
    monkeypatch.setenv("STYLISHI_NO_FALLBACK", "1")
    assert Settings.from_env().fallback == "none" and sources(Settings.from_env()) == ["hub", "cache"]


def test_the_demo_asked_for_is_the_only_step():
    assert plan(Settings.from_env(index="demo")) == (Step("demo", "demo"),)


# -- the loop and its records ----------------------------------------------------------------------------------------
def test_the_loop_tries_in_order_records_each_attempt_and_stops_at_the_first_that_serves():
    served = Served(fake_service(), note="0123456789abcdef")
    rec = Recorder(hub=Failed("the Hub did not answer within 5 s", "check the Hub"), cache=served)
    steps = plan(Settings.from_env())
    got, report = run_plan(steps, rec.tries(), asked_for=DEFAULT_INDEX_REPO, fallback="demo")
    assert got is served
    assert rec.calls == [("hub", DEFAULT_INDEX_REPO), ("cache", DEFAULT_INDEX_REPO)]  # starter, demo not needed
    assert report.attempts == (
        Attempt("hub", DEFAULT_INDEX_REPO, "failed", "the Hub did not answer within 5 s", "check the Hub"),
        Attempt("cache", DEFAULT_INDEX_REPO, "served", note="0123456789abcdef"))
    assert report.served == report.attempts[1]


def test_a_plain_error_is_recorded_with_its_message_and_a_folder_gets_the_rebuild_fix(tmp_path):
    rec = Recorder(folder=StyliShiError("index.faiss is corrupted"))
    got, report = run_plan(plan(Settings.from_env(index=str(tmp_path))), rec.tries(), asked_for=str(tmp_path))
    assert got is None
    assert report.attempts == (Attempt("folder", str(tmp_path), "failed", "index.faiss is corrupted", FIX_FOLDER),)


def test_a_model_mismatch_stops_everything_even_with_a_fallback():
    rec = Recorder(hub=ModelMismatchError("built with a, asked for b"), demo=Served(fake_service()))
    with pytest.raises(ModelMismatchError):
        run_plan(plan(Settings.from_env()), rec.tries(), asked_for=DEFAULT_INDEX_REPO, fallback="demo")
    assert rec.calls == [("hub", DEFAULT_INDEX_REPO)]


# -- what the records render to ---------------------------------------------------------------------------------------
def test_what_was_asked_for_has_no_headline():
    report = StartupReport("owner/idx", (Attempt("hub", "owner/idx", "served", note="abc"),))
    assert report.headline() is None and report.details() == []


def test_the_offline_demo_is_one_short_line_with_the_reasons_in_the_details():
    report = StartupReport(DEFAULT_INDEX_REPO, (
        Attempt("hub", DEFAULT_INDEX_REPO, "failed", "the Hub could not be reached (ConnectError: refused)",
                "check the repo id (--index OWNER/NAME[@REV])"),
        Attempt("cache", DEFAULT_INDEX_REPO, "failed", "no revision of it is cached here", "start once online"),
        Attempt("starter", DEFAULT_DATASET, "failed", "the Hub could not be reached (ConnectError: refused)."),
        Attempt("demo", "demo", "served")), fallback="demo")
    headline = report.headline()
    assert headline == f"Offline demo: the catalog index {DEFAULT_INDEX_REPO} could not be loaded."
    assert report.details() == [
        f"The Hub dataset repo {DEFAULT_INDEX_REPO}: the Hub could not be reached (ConnectError: refused). "
        "To fix it: check the repo id (--index OWNER/NAME[@REV]).",
        f"The cached copy of {DEFAULT_INDEX_REPO}: no revision of it is cached here. To fix it: start once online.",
        f"A starter index from the dataset {DEFAULT_DATASET}: the Hub could not be reached (ConnectError: refused).",
    ]


def test_cache_and_starter_headlines_say_what_is_served_and_why():
    cache = StartupReport("owner/idx", (Attempt("hub", "owner/idx", "skipped", "offline mode is on (HF_HUB_OFFLINE=1)"),
                                        Attempt("cache", "owner/idx", "served", note="f" * 40)))
    assert cache.headline() == f"Serving the cached revision {'f' * 12} of owner/idx: offline mode is on (HF_HUB_OFFLINE=1)."
    assert cache.details() == ["The Hub dataset repo owner/idx: skipped: offline mode is on (HF_HUB_OFFLINE=1)."]
    starter = StartupReport("owner/idx", (Attempt("hub", "owner/idx", "failed", "there is no dataset repo owner/idx"),
                                          Attempt("cache", "owner/idx", "failed", "no revision of it is cached here"),
                                          Attempt("starter", "me/ds", "served", note="the first 6 items of me/ds")))
    assert starter.headline().startswith("Starter index of the first 6 items of me/ds: the index owner/idx could not")
    assert "--push-to" in starter.headline()


def test_the_error_numbers_every_attempt_and_says_why_nothing_else_is_served():
    attempts = (Attempt("folder", "/x/idx", "failed", "index.faiss is corrupted.", FIX_FOLDER),)
    error = StartupReport("/x/idx", attempts, fallback="none").error()
    assert error == (f"Could not open the catalog index /x/idx. Tried: (1) The folder /x/idx: index.faiss is "
                     f"corrupted. To fix it: {FIX_FOLDER}. {NO_FALLBACK}")
    assert "\n" not in error and "--fallback demo" in error and "--no-fallback" in error
    attempts += (Attempt("demo", "demo", "failed", "disk full"),)
    error = StartupReport("/x/idx", attempts, fallback="demo").error()
    assert "(2) The offline demo: disk full." in error and NO_FALLBACK not in error


# -- open_service: the plan run with the settings, explicit versus default ------------------------------------------
def test_a_named_index_that_cannot_be_loaded_is_an_error_and_the_demo_is_never_tried():
    rec = Recorder(demo=Served(fake_service("demo")))
    with pytest.raises(StyliShiError) as caught:
        open_service("owner/idx", tries=rec.tries())
    assert [source for source, _ in rec.calls] == ["hub", "cache"]
    assert str(caught.value).startswith("Could not open the catalog index owner/idx. Tried: (1) The Hub dataset repo")
    assert NO_FALLBACK in str(caught.value)


def test_the_default_index_falls_back_and_the_service_carries_the_report():
    rec = Recorder(demo=Served(fake_service("demo")))
    service = open_service(tries=rec.tries())
    assert [source for source, _ in rec.calls] == ["hub", "cache", "starter", "demo"]
    report = service.startup
    assert isinstance(report, StartupReport) and report.asked_for == DEFAULT_INDEX_REPO
    assert [a.outcome for a in report.attempts] == ["failed", "failed", "failed", "served"]
    assert service.notice == report.headline() == f"Offline demo: the catalog index {DEFAULT_INDEX_REPO} could not be loaded."
    assert len(report.details()) == 3


def test_a_named_index_with_fallback_demo_serves_the_demo():
    rec = Recorder(demo=Served(fake_service("demo")))
    service = open_service("owner/idx", fallback="demo", tries=rec.tries())
    assert service.source == "demo" and service.notice.startswith("Offline demo: the catalog index owner/idx")


# -- settings: every one checked before anything loads ---------------------------------------------------------------
BAD_ENV = [  # (variable, value, what the one-line message must say)
    ("STYLISHI_MAX_TEXT", "abc", "STYLISHI_MAX_TEXT=abc is not a whole number"),
    ("STYLISHI_MAX_BYTES", "-5", "STYLISHI_MAX_BYTES=-5 is too small"),
    ("STYLISHI_MAX_SIDE", "1.5", "STYLISHI_MAX_SIDE=1.5 is not a whole number"),
    ("STYLISHI_THREADS", "many", "STYLISHI_THREADS=many is not a whole number"),
    ("STYLISHI_STARTER_ITEMS", "0", "STYLISHI_STARTER_ITEMS=0 is too small"),
    ("STYLISHI_HUB_TIMEOUT", "soon", "STYLISHI_HUB_TIMEOUT=soon is not a usable number of seconds"),
    ("STYLISHI_HUB_TIMEOUT", "0", "STYLISHI_HUB_TIMEOUT=0 is not a usable number of seconds"),
    ("STYLISHI_EMBED_MODE", "bogus", "STYLISHI_EMBED_MODE=bogus is not one of the accepted values: "
                                     "auto, fp32, bf16, int8, openvino"),
    ("STYLISHI_DEVICE", "gpu", "STYLISHI_DEVICE=gpu is not a device: use one of auto, cpu, cuda, cuda:N, mps"),
    ("STYLISHI_FALLBACK", "maybe", "STYLISHI_FALLBACK=maybe is not one of the accepted values: none, starter, demo"),
    ("STYLISHI_NO_FALLBACK", "perhaps", "STYLISHI_NO_FALLBACK=perhaps is not a yes/no value"),
    ("STYLISHI_MCP", "2", "STYLISHI_MCP=2 is not a yes/no value"),
    ("STYLISHI_DATASET", "just-a-name", "STYLISHI_DATASET=just-a-name is not a Hub dataset id"),
]


@pytest.mark.parametrize("name,value,says", BAD_ENV, ids=[f"{n}={v}" for n, v, _ in BAD_ENV])
def test_a_bad_environment_variable_is_one_line_naming_it_and_what_it_accepts(name, value, says, monkeypatch):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingError) as caught:
        Settings.from_env()
    message = str(caught.value)
    assert message.startswith(says) and "\n" not in message, message


def test_a_bad_setting_stops_open_service_before_any_source_is_tried(monkeypatch):
    """STYLISHI_EMBED_MODE=bogus once fell back to the demo and rebuilt its cache; now nothing is tried at all."""
    monkeypatch.setenv("STYLISHI_EMBED_MODE", "bogus")
    rec = Recorder(demo=Served(fake_service("demo")))
    with pytest.raises(SettingError, match="STYLISHI_EMBED_MODE=bogus"):
        open_service(tries=rec.tries())
    assert rec.calls == []


@pytest.mark.parametrize("flags,says", [
    ({"threads": "-1"}, "--threads -1 is too small"),
    ({"threads": "x"}, "--threads x is not a whole number"),
    ({"embed_mode": "fp64"}, "--embed-mode fp64 is not one of the accepted values: " + ", ".join(EMBED_MODES)),
    ({"device": "tpu"}, "--device tpu is not a device"),
    ({"fallback": "always"}, "--fallback always is not one of the accepted values: none, starter, demo"),
    ({"starter_items": "0"}, "--starter-items 0 is too small"),
])
def test_a_bad_flag_is_one_line_naming_it(flags, says):
    with pytest.raises(SettingError) as caught:
        Settings.from_env(**flags)
    assert str(caught.value).startswith(says), str(caught.value)


def test_contradicting_fallback_settings_are_refused(monkeypatch):
    monkeypatch.setenv("STYLISHI_NO_FALLBACK", "1")
    monkeypatch.setenv("STYLISHI_FALLBACK", "demo")
    with pytest.raises(SettingError, match="contradict"):
        Settings.from_env()


def test_cuda_without_a_gpu_and_cpu_only_modes_on_a_gpu_are_refused():
    settings = Settings.from_env()
    for device in ("cuda", "cuda:0"):
        with pytest.raises(SettingError, match=f"^STYLISHI_DEVICE={device}: .*Use cpu or auto"):
            Settings(**{**settings.__dict__, "device": device}).check_machine(
                device_label=f"STYLISHI_DEVICE={device}", cuda_devices=0)
    with pytest.raises(SettingError, match="has 1 CUDA device"):
        Settings(**{**settings.__dict__, "device": "cuda:1"}).check_machine(cuda_devices=1)
    with pytest.raises(SettingError, match="int8 runs on the CPU only"):
        Settings(**{**settings.__dict__, "device": "cuda", "embed_mode": "int8"}).check_machine(cuda_devices=1)
    Settings(**{**settings.__dict__, "device": "cuda", "embed_mode": "bf16"}).check_machine(cuda_devices=1)


def test_cuda_on_this_machine_is_refused_when_torch_has_no_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(SettingError) as caught:
        Settings.from_env(device="cuda")
    assert str(caught.value).startswith("--device cuda: ") and "Use cpu or auto" in str(caught.value)


def test_good_settings_are_read_and_typed(monkeypatch):
    for name, value in {"STYLISHI_MAX_TEXT": "300", "STYLISHI_THREADS": "2", "STYLISHI_EMBED_MODE": "FP32",
                        "STYLISHI_HUB_TIMEOUT": "0.5", "STYLISHI_MCP": "yes", "STYLISHI_DEVICE": "cpu"}.items():
        monkeypatch.setenv(name, value)
    s = Settings.from_env(threads="3")
    assert (s.limits.max_text_chars, s.threads, s.embed_mode, s.hub_timeout, s.mcp, s.device) == \
        (300, 3, "fp32", 0.5, True, "cpu")


@pytest.mark.parametrize("version, rebuilt", [(1, True), (None, False)])
def test_a_cached_demo_of_an_older_release_is_built_again(demo_index, tmp_path, monkeypatch, version, rebuilt):
    """A demo cached by an older release (the random tiny model) is not served as today's demo; today's is reused."""
    import json
    import shutil

    import stylishi.builder
    from stylishi import catalog as catalog_mod
    from stylishi.config import cache_dir
    from stylishi.demo import DEMO_VERSION

    cached = cache_dir() / "demo"
    shutil.copytree(demo_index, cached)
    manifest = json.loads((cached / catalog_mod.MANIFEST).read_text())
    assert manifest["source"]["demo_version"] == DEMO_VERSION
    if version is not None:
        manifest["source"]["demo_version"] = version
        (cached / catalog_mod.MANIFEST).write_text(json.dumps(manifest))
    builds = []

    def build_demo(out, progress=True):  # the real build takes ~30 s of CPU: copy the session's demo instead
        builds.append(out)
        shutil.copytree(demo_index, out, dirs_exist_ok=True)

    monkeypatch.setattr(stylishi.builder, "build_demo", build_demo)
    service = open_service("demo", device="cpu", mode="fp32")
    assert bool(builds) is rebuilt
    assert catalog_mod.read_manifest(cached)["source"]["demo_version"] == DEMO_VERSION
    assert len(service.catalog) == len(catalog_mod.load(demo_index))
