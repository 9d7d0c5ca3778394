"""Public click-log formats as data: the canonical roles, :class:`Preset` and :data:`PRESETS`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

Format = Literal["csv", "tsv", "parquet", "jsonl", "sessions-txt"]
"""File formats :func:`read_events` understands (``tsv`` is CSV with tabs)."""

TimeUnit = Literal["s", "ms", "us", "ns", "iso"]
"""Unit of a numeric timestamp column, or ``"iso"`` for ISO-8601 text."""

OnBadRows = Literal["raise", "skip"]

ROLES: tuple[str, ...] = ("session_id", "user_id", "item_id", "timestamp", "event_type")
"""Canonical column names, in the order they appear in a canonical click frame."""

ID_ROLES = ("session_id", "user_id", "item_id")
"""The roles that hold ids."""


@dataclass(frozen=True)
class Preset:
    """How to read one public click-log format.

    ``columns`` maps canonical names (see :data:`ROLES`) to the file's column names;
    matching against the header ignores case and ``_``/``-``/spaces, so ``sessionId``
    finds ``session_id``. ``names`` names the fields of a file without a header.
    ``integer_ids`` makes a non-integer id a bad row (the public logs use integers, so
    one is damage) instead of turning the whole column into text.
    ``event_type`` is the raw event type of every row of a log without a type column
    (YooChoose's clicks are all ``click``); ``event_map`` maps the log's raw event types
    to the canonical ``view``/``cart``/``purchase``
    (:mod:`~sessionrec.data.events.event_types`; canonical names map to themselves).
    ``purchases`` describes a companion file of purchases (its ``filename``) that is read
    together with the log when it sits beside it (YooChoose's ``yoochoose-buys.dat``,
    Diginetica's ``train-purchases.csv``).
    ``timestamp_offset_ms`` names a column of milliseconds added to the timestamp
    (Diginetica's ``timeframe``); ``explode`` names a list-of-objects column holding the
    events of one session per row (OTTO's ``events``). ``test_days`` is the test period of
    the dataset's standard protocol, used by :func:`~sessionrec.data.prepare.prepare` when
    no ``test_days`` is given (one day when the preset has none).
    """

    format: Format
    columns: Mapping[str, str]
    description: str = ""
    filename: str = ""
    separator: str | None = None
    has_header: bool = True
    names: tuple[str, ...] | None = None
    integer_ids: bool = False
    time_unit: TimeUnit | None = None
    event_type: str | None = None
    timestamp_offset_ms: str | None = None
    explode: str | None = None
    test_days: float | None = None
    event_map: Mapping[str, str] = field(default_factory=dict)
    purchases: Preset | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", MappingProxyType(dict(self.columns)))
        object.__setattr__(self, "event_map", MappingProxyType(dict(self.event_map)))


TAOBAO_FAV = "view"
"""Taobao's ``fav`` (adding an item to the favourites) counts as a view by default: it
shows interest but is no step of the purchase funnel. ``event_map={"fav": "cart"}``
(``--event-map fav=cart``) makes it a cart."""


PRESETS: dict[str, Preset] = {
    "yoochoose": Preset(
        format="csv",
        filename="yoochoose-clicks.dat",
        description="RecSys Challenge 2015 clicks: session_id,timestamp(ISO),item_id,category",
        separator=",",
        has_header=False,
        names=("session_id", "timestamp", "item_id", "category"),
        columns={"session_id": "session_id", "item_id": "item_id", "timestamp": "timestamp"},
        integer_ids=True,
        time_unit="iso",
        event_type="click",
        event_map={"click": "view", "buy": "purchase"},
        purchases=Preset(
            format="csv",
            filename="yoochoose-buys.dat",
            description="RecSys Challenge 2015 buys: session_id,timestamp(ISO),item_id,price,"
            "quantity",
            separator=",",
            has_header=False,
            names=("session_id", "timestamp", "item_id", "price", "quantity"),
            columns={"session_id": "session_id", "item_id": "item_id", "timestamp": "timestamp"},
            integer_ids=True,
            time_unit="iso",
            event_type="buy",
            event_map={"buy": "purchase"},
        ),
    ),
    "diginetica": Preset(
        format="csv",
        filename="train-item-views.csv",
        description="CIKM Cup 2016 item views: session_id;user_id;item_id;timeframe;eventdate",
        separator=";",
        columns={"session_id": "session_id", "item_id": "item_id", "timestamp": "eventdate"},
        integer_ids=True,
        time_unit="iso",
        timestamp_offset_ms="timeframe",
        test_days=7.0,  # the SR-GNN / NARM protocol: sessions of the last 7 days are the test
        event_map={"view": "view", "purchase": "purchase"},
        purchases=Preset(
            format="csv",
            filename="train-purchases.csv",
            description="CIKM Cup 2016 purchases: "
            "sessionId;userId;timeframe;eventdate;ordernumber;itemId",
            separator=";",
            columns={"session_id": "sessionId", "item_id": "itemId", "timestamp": "eventdate"},
            integer_ids=True,
            time_unit="iso",
            timestamp_offset_ms="timeframe",
            event_type="purchase",
            event_map={"purchase": "purchase"},
        ),
    ),
    "retailrocket": Preset(
        format="csv",
        filename="events.csv",
        description="Retailrocket visitor log (timestamp in ms); cut sessions with sessionize",
        separator=",",
        columns={
            "user_id": "visitorid",
            "item_id": "itemid",
            "timestamp": "timestamp",
            "event_type": "event",
        },
        integer_ids=True,
        time_unit="ms",
        event_map={"view": "view", "addtocart": "cart", "transaction": "purchase"},
    ),
    "otto": Preset(
        format="jsonl",
        filename="train.jsonl",
        description='OTTO (Kaggle 2022): {"session", "events": [{"aid", "ts" (ms), "type"}]}',
        columns={
            "session_id": "session",
            "item_id": "aid",
            "timestamp": "ts",
            "event_type": "type",
        },
        integer_ids=True,
        time_unit="ms",
        explode="events",
        event_map={"clicks": "view", "carts": "cart", "orders": "purchase"},
    ),
    "taobao": Preset(
        format="csv",
        filename="UserBehavior.csv",
        description="Taobao UserBehavior (Tianchi 649): user_id,item_id,category_id,"
        "behavior_type,timestamp (s), no header; cut sessions with sessionize",
        separator=",",
        has_header=False,
        names=("user_id", "item_id", "category_id", "behavior_type", "timestamp"),
        columns={
            "user_id": "user_id",
            "item_id": "item_id",
            "timestamp": "timestamp",
            "event_type": "behavior_type",
        },
        integer_ids=True,
        time_unit="s",
        event_map={"pv": "view", "cart": "cart", "buy": "purchase", "fav": TAOBAO_FAV},
    ),
    "gru4rec": Preset(
        format="tsv",
        filename="*.txt",
        description="GRU4Rec TSV: SessionId<TAB>ItemId<TAB>Time (Unix seconds)",
        separator="\t",
        columns={"session_id": "SessionId", "item_id": "ItemId", "timestamp": "Time"},
        time_unit="s",
    ),
    "sessions-txt": Preset(
        format="sessions-txt",
        filename="train_sessions.txt",
        description="one session per line, space-separated item ids, no timestamps",
        has_header=False,
        columns={"session_id": "line", "item_id": "items"},
    ),
}
"""Public log formats by name. Add your own :class:`Preset` here to register one."""
