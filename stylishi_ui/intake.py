"""A query picture as Gradio hands it over (an upload's path, or a data URL from the webcam or clipboard), checked
before the core opens it: a path must be an upload this server received (or one of the app's own pictures), and a
data URL's base64 is measured before it is decoded."""
from __future__ import annotations

import base64
import binascii
import math
from typing import Any, Callable

from stylishi.config import Limits

from .errors import UserError
from .guard import NOT_HERE, FileGate

UNREADABLE = "The picture could not be read. Please take or upload it again."


def query_picture(gate: FileGate, limits: Limits) -> Callable[[Any], str | bytes | None]:
    """The preprocess of the query image components: a checked path, the decoded bytes of a data URL, or None."""
    def preprocess(payload):
        if payload is None:
            return None
        url = getattr(payload, "url", None)
        if url and url.startswith("data:"):
            return data_url_bytes(url, limits)
        path = getattr(payload, "path", None)
        if path is None:
            raise UserError("No picture arrived. Please upload it again.")
        if not gate.allows(path):
            raise UserError(NOT_HERE)
        return path

    return preprocess


def data_url_bytes(url: str, limits: Limits) -> bytes:
    """The bytes of a `data:` URL (a webcam or clipboard picture, or the page's copy of the photo a region was
    drawn on), its base64 measured before it is decoded."""
    if not isinstance(url, str) or not url.startswith("data:"):
        raise UserError(UNREADABLE)
    encoded = url.split(",", 1)[1] if "," in url else ""
    if len(encoded) > 4 * math.ceil(limits.max_bytes / 3) + 4:
        size = len(encoded) * 3 / 4
        raise UserError(f"The file is {size / 1e6:.1f} MB; the most we accept is "
                        f"{limits.max_bytes / 1e6:.0f} MB. Please upload a smaller photo.")
    try:
        return base64.b64decode(encoded, validate=False)
    except (binascii.Error, ValueError):
        raise UserError(UNREADABLE) from None
