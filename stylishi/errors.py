"""The error types a caller can show to a person as they are: every message says what went wrong and what to do."""
import re


class StyliShiError(Exception):
    """Base for every error whose message is written for a person."""


class ImageError(StyliShiError, ValueError):
    """The query or catalog picture cannot be used.

    The message is for the person who uploaded it; `reason` is the fact alone, for a build log where "please upload
    it again" means nothing: given, or else the message's first sentence ("the file is empty (0 bytes)").
    """

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or _first_sentence(message)


def _first_sentence(message: str) -> str:
    first = re.split(r"(?<=[.!?])\s+", message.strip(), maxsplit=1)[0].rstrip(".")
    return first[:1].lower() + first[1:] if first[1:2].islower() else first


class QueryError(StyliShiError, ValueError):
    """A search request is out of range: k, filters, text, unknown item."""


class ArtifactError(StyliShiError):
    """A catalog index folder is missing, damaged or does not fit the model."""


class ModelError(StyliShiError):
    """The model checkpoint (CLIP, SigLIP) cannot be found or loaded."""


class ModelMismatchError(ArtifactError):
    """An explicitly named model that is not the one the index was built with: a configuration error, never a
    reason to fall back to another index."""


class SettingError(StyliShiError, ValueError):
    """A setting (environment variable or flag) that cannot be used; the message names it and what it accepts."""
