"""Filters as a program sends them: a JSON object (or its text) mapping a catalog field to a value or a list of
values. This only turns the text into the object; what a filter may hold is decided by the search service itself
(unknown fields and values, "All" and empty values meaning no filter), so the page, the API and library use share
one set of rules."""
from __future__ import annotations

import json
from typing import Any, Mapping

from .errors import QueryError

EXAMPLE = '{"gender": "Women", "colour": ["Red", "Blue"]}'


def parse_filters(filters: Any) -> Mapping[str, Any] | None:
    """None for no filter; else the object, from JSON text if need be. Not an object: a QueryError naming the form."""
    if filters is None or (isinstance(filters, (str, dict, list)) and not (filters.strip() if isinstance(filters, str)
                                                                          else filters)):
        return None
    if isinstance(filters, str):
        try:
            filters = json.loads(filters)
        except json.JSONDecodeError:
            raise QueryError(f"filters must be a JSON object such as {EXAMPLE}.") from None
    if not isinstance(filters, Mapping):
        raise QueryError(f"filters must be an object such as {EXAMPLE}.")
    return filters or None


def from_fields(columns: list[str], values: list[Any]) -> dict[str, Any] | None:
    """The page's filter controls (one value list per catalog field) as a filters object; None when all are empty."""
    out = {c: v for c, v in zip(columns, values) if v not in (None, "", [], "All")}
    return out or None
