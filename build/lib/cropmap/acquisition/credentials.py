"""Credentials: read from the environment only, used in memory only, never written anywhere.

A Planetary Computer subscription key is read by the `planetary-computer` package from
`PC_SDK_SUBSCRIPTION_KEY`; it buys short-lived SAS tokens that are appended to asset URLs at load
time. Saved item collections keep the unsigned URLs (tokens expire, and they are credentials too),
and every message cropmap prints goes through `redact`, which drops URL query strings and the
values of known credential variables.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence

import pystac

from cropmap.errors import SearchError

__all__ = ["CREDENTIAL_VARIABLES", "RedactingFilter", "redact", "sign_items"]

CREDENTIAL_VARIABLES = ("PC_SDK_SUBSCRIPTION_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                        "GS_SECRET_ACCESS_KEY", "AZURE_STORAGE_ACCESS_KEY", "AZURE_STORAGE_SAS_TOKEN")
_URL_QUERY = re.compile(r"(https?://[^\s?'\"]+)\?[^\s'\"]*")


def redact(text: str) -> str:
    """`text` without URL query strings (SAS tokens, signatures) and credential values."""
    text = _URL_QUERY.sub(r"\1?<redacted>", text)
    for name in CREDENTIAL_VARIABLES:
        value = os.environ.get(name)
        if value and len(value) >= 6:
            text = text.replace(value, f"<{name}>")
    return text


class RedactingFilter(logging.Filter):
    """Redacts every record of the handler it is attached to (ours and third-party loggers')."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def sign_items(items: Sequence[pystac.Item], *, method: str) -> list[pystac.Item]:
    """Copies of `items` whose asset URLs are signed for reading (`method` "none": the items)."""
    if method == "none":
        return list(items)
    if method == "planetary-computer":
        import planetary_computer

        try:
            return [planetary_computer.sign(item.clone()) for item in items]
        except Exception as err:  # requests / pydantic errors of the token service
            raise SearchError(f"signing the Planetary Computer asset URLs failed: {redact(str(err))}") from None
    raise ValueError(f"unknown signing method {method!r}")
