"""The error types a caller can show to a person as they are: every message says what went wrong and what to do."""


class StyliShiError(Exception):
    """Base for every error whose message is written for a person."""


class ImageError(StyliShiError, ValueError):
    """The query or catalog picture cannot be used."""


class QueryError(StyliShiError, ValueError):
    """A search request is out of range: k, filters, text, unknown item."""


class ArtifactError(StyliShiError):
    """A catalog index folder is missing, damaged or does not fit the model."""


class ModelError(StyliShiError):
    """The CLIP checkpoint cannot be found or loaded."""


class SettingError(StyliShiError, ValueError):
    """A setting (environment variable or flag) that cannot be used; the message names it and what it accepts."""
