#!/usr/bin/env python
"""Build a StyliShi catalog index: `python build_index.py --help` (the same as `stylishi build`).

The code lives in stylishi/build_cli.py; this file stays so that the README's commands work from a fresh clone.
"""
import sys

from stylishi.build_cli import main

if __name__ == "__main__":
    sys.exit(main(prog="build_index.py"))
