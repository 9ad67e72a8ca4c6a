"""Exceptions of the cropmap package."""


class CropmapError(Exception):
    """Base class: an error with a message meant for the user, shown without a traceback."""


class ConfigError(CropmapError):
    """The configuration is invalid; the message names the key."""


class SearchError(CropmapError):
    """A STAC search failed or found nothing."""


class DataError(CropmapError):
    """Input data cannot be used (no overlap, no clear observation, no labels, ...)."""


class TrainingError(CropmapError):
    """Training cannot go on (no labels, non-finite loss, ...)."""
