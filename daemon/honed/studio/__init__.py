"""The web studio: static files (vanilla JS modules, uPlot vendored) that honed serves at `/`.

The studio talks only to honed's public HTTP API, so it can do nothing the SDK cannot. The routes that serve
it are in `honed.api.studio`; how the vendored chart library is updated is in README.md beside this file.
"""

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
