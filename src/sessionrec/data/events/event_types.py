"""Canonical event types: every click is a ``view``, a ``cart`` or a ``purchase``.

Public logs name their events in their own words (OTTO ``clicks``/``carts``/``orders``,
Taobao ``pv``/``cart``/``fav``/``buy``, Retailrocket ``view``/``addtocart``/``transaction``).
Models, the service and the metrics only ever see the three canonical names, so a log's
words are mapped once, when it is read: :func:`canonical_event_types` turns the raw column
into ``event_type`` (canonical) and keeps the raw words in ``raw_event_type``.

Matching ignores case and surrounding whitespace (``" Clicks"`` is ``clicks``). A raw value
that already is a canonical name maps to itself. A value the map does not know is never
dropped or guessed: it raises a :class:`DataError` naming the value, how many rows have it,
the file and the option that maps it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import polars as pl

from sessionrec._errors import ConfigError, data_error

CANONICAL_EVENT_TYPES: tuple[str, ...] = ("view", "cart", "purchase")
"""The canonical event types, weakest first (a purchase says more than a cart)."""

VIEW, CART, PURCHASE = CANONICAL_EVENT_TYPES

EVENT_TYPE_DTYPE = pl.Enum(CANONICAL_EVENT_TYPES)
"""The Polars dtype of a canonical ``event_type`` column inside the data layer."""

FAV_DEFAULT = VIEW
"""What Taobao's ``fav`` (a favourite) counts as unless mapped otherwise: a strong view,
not a step of the purchase funnel. Map it with ``event_map={"fav": "cart"}``."""


def normalised_event_type(raw: str) -> str:
    """A raw event type as maps compare it: stripped, lower case."""
    return raw.strip().lower()


def event_map_of(*maps: Mapping[str, str] | None) -> dict[str, str]:
    """Several raw -> canonical maps merged, later ones winning, keys normalised.

    Raises :class:`ConfigError` for a value that is not a canonical event type.
    """
    merged: dict[str, str] = {}
    for mapping in maps:
        for raw, canonical in (mapping or {}).items():
            if not isinstance(raw, str) or not normalised_event_type(raw):
                raise ConfigError(f"event_map keys must be non-empty text, not {raw!r}")
            if canonical not in CANONICAL_EVENT_TYPES:
                raise ConfigError(
                    f"event_map maps {raw!r} to {canonical!r}; event types map to one of "
                    f"{', '.join(CANONICAL_EVENT_TYPES)}"
                )
            merged[normalised_event_type(raw)] = canonical
    return merged


def parse_event_map(pairs: list[str] | None) -> dict[str, str]:
    """``["fav=view", "like=cart"]`` (the command line's ``--event-map``) -> a map."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        raw, sep, canonical = pair.partition("=")
        if not sep or not raw.strip():
            raise ConfigError(
                f"--event-map takes RAW=CANONICAL (e.g. fav=view), not {pair!r}; "
                f"CANONICAL is one of {', '.join(CANONICAL_EVENT_TYPES)}"
            )
        out[raw.strip()] = canonical.strip()
    event_map_of(out)  # checks the values
    return out


def canonical_event_types(
    raw: pl.Series, event_map: Mapping[str, str], *, path: object = None, field: str | None = None
) -> pl.Series:
    """Raw event types (text, no nulls) -> canonical names (String), or a clear error.

    ``event_map`` is a merged map (:func:`event_map_of`); canonical names always map to
    themselves. Only the distinct values are normalised and looked up, so tens of
    millions of rows cost one ``replace_strict``.
    """
    counts = raw.value_counts(sort=True)
    pairs = zip(counts[raw.name].to_list(), counts["count"].to_list(), strict=True)
    mapping = event_type_lookup(list(pairs), event_map, path=path, field=field)
    return raw.replace_strict(mapping, default=None, return_dtype=pl.String).alias("event_type")


def event_type_lookup(
    counts: list[tuple[str | None, int]],
    event_map: Mapping[str, str],
    *,
    path: object = None,
    field: str | None = None,
) -> dict[str, str]:
    """Each distinct raw value (with its row count, most frequent first) -> its canonical
    name; raises :class:`DataError` naming the unknown ones."""
    lookup = {name: name for name in CANONICAL_EVENT_TYPES}
    lookup.update(event_map)
    mapping: dict[str, str] = {}
    unknown: list[tuple[str, int]] = []
    for value, count in counts:
        if value is None:
            continue
        canonical = lookup.get(normalised_event_type(value))
        if canonical is None:
            unknown.append((value, count))
        else:
            mapping[value] = canonical
    if unknown:
        raise data_error(unknown_types_message(unknown, lookup), path=path, field=field)
    return mapping


def unknown_types_message(unknown: list[tuple[str, int]], lookup: Mapping[str, str]) -> str:
    """Why unknown raw event types are refused, and the option that maps them."""
    value, count = unknown[0]
    others = ""
    if len(unknown) > 1:
        rest = ", ".join(f"{v!r} ({n} row(s))" for v, n in unknown[1:6])
        others = f" (also unknown: {rest}{', ...' if len(unknown) > 6 else ''})"
    known = ", ".join(sorted(lookup))
    option = normalised_event_type(value) or value
    return (
        f"unknown event type {value!r} in {count} row(s){others}; known types: {known}. "
        f"Map it to one of {', '.join(CANONICAL_EVENT_TYPES)} with --event-map "
        f"{option}=view (event_map={{{option!r}: 'view'}} in Python)"
    )


def frozen_map(mapping: Mapping[str, str]) -> Mapping[str, str]:
    """A read-only copy of a map, for the frozen :class:`Preset`."""
    return MappingProxyType(dict(mapping))
