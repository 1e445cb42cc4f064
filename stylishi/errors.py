"""The error types a caller can show to a person as they are: every message says what went wrong and what to do."""


class StyliShiError(Exception):
    """Base for every error whose message is written for a person."""


class ImageError(StyliShiError, ValueError):
    """The query or catalog picture cannot be used.

    The message is for the person who uploaded it; `reason` is the same fact in a few words for a build log or a
    summary ("not a picture", "truncated PNG"), where "please upload it again" means nothing.
    """

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


class QueryError(StyliShiError, ValueError):
    """A search request is out of range: k, filters, text, unknown item."""


class ArtifactError(StyliShiError):
    """A catalog index folder is missing, damaged or does not fit the model."""


class ModelError(StyliShiError):
    """The CLIP checkpoint cannot be found or loaded."""
