"""The README's configuration table and flag lists against the code: every setting and every flag is documented,
and nothing documented is gone. The code is read as it runs: the scripts' own argument parsers, and every
STYLISHI_* name in the sources."""
from __future__ import annotations

import argparse
import re
import runpy
import sys
from pathlib import Path
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
ENTRY_POINTS = ("app.py", "build_index.py")  # what the README tells people to run
SOURCES = [ROOT / name for name in ENTRY_POINTS] + sorted(
    p for package in ("stylishi", "stylishi_ui") for p in (ROOT / package).rglob("*.py"))
ENV_NAME = re.compile(r"\bSTYLISHI_[A-Z0-9_]*[A-Z0-9]\b")
FLAG = re.compile(r"`(--[a-z][a-z0-9-]*)")


class _Parsed(Exception):
    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser


def parser_of(script: str) -> argparse.ArgumentParser:
    """The argument parser `python SCRIPT` builds, caught as it is about to parse (nothing after that runs)."""
    def grab(self, args=None, namespace=None):
        raise _Parsed(self)

    with mock.patch.object(argparse.ArgumentParser, "parse_known_args", grab), \
            mock.patch.object(sys, "argv", [script]):
        try:
            runpy.run_path(str(ROOT / script), run_name="__main__")
        except _Parsed as parsed:
            return parsed.parser
    raise AssertionError(f"{script} did not parse its command line")


def flags_of(parser: argparse.ArgumentParser) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings if s.startswith("--") and s != "--help"}


def section(heading: str) -> str:
    """The README's text under `heading` (a line starting with it) up to the next heading of the same or a higher
    level."""
    match = re.search(rf"^(#+) {re.escape(heading)}.*?$", README, flags=re.M)
    assert match, f"README.md has no heading {heading!r}"
    level = len(match.group(1))
    rest = README[match.end():]
    end = re.search(rf"^#{{1,{level}}} ", rest, flags=re.M)
    return rest[: end.start() if end else len(rest)]


def settings_in_code() -> set[str]:
    return {name for path in SOURCES for name in ENV_NAME.findall(path.read_text(encoding="utf-8"))}


def test_every_setting_is_in_the_configuration_table():
    table = [line for line in section("Configuration").splitlines() if line.startswith("| `")]
    documented = {name for line in table for name in ENV_NAME.findall(line.split("|")[1])}
    code = settings_in_code()
    assert len(code) >= 10, code  # the scan found the settings (a broken regex must not pass as "all documented")
    assert code - documented == set(), f"settings the README's Configuration table lacks: {sorted(code - documented)}"
    assert documented - code == set(), f"settings the README documents but no code reads: {sorted(documented - code)}"


@pytest.mark.parametrize("script", ENTRY_POINTS)
def test_every_flag_is_in_the_flag_list(script):
    flags = flags_of(parser_of(script))
    assert len(flags) >= 5, flags
    listed = set(FLAG.findall(section(f"Flags of `{script}`")))
    assert flags - listed == set(), f"flags of {script} missing from the README's list: {sorted(flags - listed)}"
    assert listed - flags == set(), f"the README lists flags {script} does not have: {sorted(listed - flags)}"


def test_the_flag_lists_are_what_help_prints():
    """The parser caught above is the one `--help` shows (a second parser somewhere would make this check blind)."""
    import subprocess

    for script in ENTRY_POINTS:
        shown = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True,
                               timeout=120, cwd=ROOT)
        assert shown.returncode == 0, shown.stderr
        in_help = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", shown.stdout.split("options:", 1)[-1]))
        assert flags_of(parser_of(script)) <= in_help | {"--help"}
