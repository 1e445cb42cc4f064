#!/usr/bin/env python
"""StyliShi's web app: `python app.py --index demo_index` (a Space runs this file). The app lives in stylishi_ui/."""
from __future__ import annotations

import sys

from stylishi_ui.server import main

if __name__ == "__main__":
    sys.exit(main())
