"""The `stylishi` command: `stylishi serve`, `stylishi build`, `stylishi eval` (each with its own --help).

Each subcommand imports its code only when it runs: `stylishi build` never loads the web app, and the core package
never imports a UI toolkit (`serve` runs stylishi_ui, a package of its own).
"""
from __future__ import annotations

import importlib
import sys

# subcommand: (module, what it does); the module's main(argv, prog=...) does the work.
COMMANDS = {
    "serve": ("stylishi_ui.server", "start the web app and its API (the same as `python app.py`)"),
    "build": ("stylishi.build_cli", "build a catalog index (the same as `python build_index.py`)"),
    "eval": ("stylishi.evaluate", "measure how well an index finds the right products"),
}
USAGE = "usage: stylishi {" + ",".join(COMMANDS) + "} [options]\n\n" + "\n".join(
    f"  {name:<6} {what}" for name, (_, what) in COMMANDS.items()) + "\n\n`stylishi COMMAND --help` for its options."


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"stylishi: unknown command {name!r}\n{USAGE}", file=sys.stderr)
        return 2
    module_name = COMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module_name.startswith(exc.name):
            raise  # a dependency of that module is missing: its own message says which
        print(f"stylishi {name}: this installation has no {module_name} yet, so `stylishi {name}` is not "
              "available. Update StyliShi (git pull; pip install -e .) to get it.", file=sys.stderr)
        return 2
    return _run(module.main, rest, f"stylishi {name}")


def _run(entry, argv: list[str], prog: str) -> int:
    """Call a subcommand's main, passing prog when it takes one (so its --help names `stylishi build`)."""
    import inspect

    try:
        takes_prog = "prog" in inspect.signature(entry).parameters
    except (TypeError, ValueError):  # pragma: no cover
        takes_prog = False
    status = entry(argv, prog=prog) if takes_prog else entry(argv)
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
