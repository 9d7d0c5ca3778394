"""Request and response schemas of the service, and the options a request asks for.

The response models and :class:`ReloadIn` are fixed. The other request models carry the
configured limits (id length, ``k``, session length, filter list length), so
:func:`build_request_models` builds them once per app from its :class:`ServeConfig`: the
OpenAPI schema then shows the limits the service enforces, and pydantic enforces them in
its compiled core. This module has no ``from __future__ import annotations``: pydantic must
see the annotations built in the factory as real objects, not strings.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic_core import PydanticCustomError

from sessionrec.serve.config import ServeConfig
from sessionrec.serve.event_types import allowed_event_types, canonical_event_type
from sessionrec.serve.rules import Filters

NO_CONTROL = r"^[^\x00-\x1f\x7f]+$"
SESSION_ID = r"^[!-.0-~]+$"  # printable ASCII without space and '/'
VARIANT = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
RECOMMENDATION_ID = r"^[A-Za-z0-9_-]{1,64}$"
MAX_TIMESTAMP = 1e11
"""Unix seconds; far beyond any real click, small enough to catch milliseconds sent as seconds."""
MAX_PRICE = 1e9
"""Largest price of one item (any currency): beyond it a price is a bug, not a sale."""
MAX_QUANTITY = 10_000

IdInt = Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]
VariantName = Annotated[str, StringConstraints(pattern=VARIANT)]
Timestamp = Annotated[float, Field(ge=0, le=MAX_TIMESTAMP, allow_inf_nan=False)]


def canonical_or_refused(name: str) -> str:
    """The canonical event type of ``name``; an ``event_type`` error listing the allowed ones."""
    canonical = canonical_event_type(name)
    if canonical is None:
        raise PydanticCustomError(
            "event_type",
            "unknown event type '{given}': use one of {allowed}",
            {"given": name, "allowed": allowed_event_types()},
        )
    return canonical


EventType = Annotated[
    str,
    StringConstraints(min_length=1, max_length=32),
    AfterValidator(canonical_or_refused),
    Field(
        description="view (default), cart or purchase; aliases such as click, addtocart or "
        "transaction are stored as their canonical type (sessionrec.serve.event_types)."
    ),
]
Price = Annotated[float, Field(strict=True, ge=0, le=MAX_PRICE, allow_inf_nan=False)]


# ------------------------------------------------------------------ options
@dataclass(frozen=True)
class Options:
    """What a recommendation request asks for, whichever endpoint it came through."""

    k: int
    exclude_seen: bool | None
    """``None``: the served model decides (:func:`sessionrec.serve.recommend.excludes_seen`)."""
    fallback: bool
    filters: Filters
    exclude_items: tuple[str, ...]
    details: bool
    variant: str | None
    explain: bool = False
    objective: str | None = None
    """``None``: what the served model was fitted for (:meth:`Recommender.for_objective`)."""


def request_options(
    config: ServeConfig,
    *,
    k: int,
    exclude_seen: bool | None,
    fallback: bool,
    categories: list[str],
    exclude_categories: list[str],
    available_only: bool,
    exclude_items: Sequence[str | int],
    details: bool,
    variant: str | None,
    explain: bool,
    objective: str | None = None,
) -> Options:
    """The one place a request's :class:`Options` are built (``exclude_seen`` defaults)."""
    return Options(
        k=k,
        exclude_seen=config.exclude_seen if exclude_seen is None else exclude_seen,
        fallback=fallback,
        filters=Filters(
            include_categories=frozenset(categories),
            exclude_categories=frozenset(exclude_categories),
            available_only=available_only,
        ),
        exclude_items=tuple(str(i) for i in exclude_items),
        details=details,
        variant=variant,
        explain=explain,
        objective=objective,
    )


Objective = Literal["click", "cart", "purchase"]
OBJECTIVE_HELP = (
    "What to rank for: click (the next item), cart or purchase (what this visitor will cart "
    "or buy later in the session; session-kNN models, trained on data with such events). "
    "Default: what the served model was trained for."
)


# ------------------------------------------------------------------ requests
class StrictBody(BaseModel):
    """A JSON request body: a field the model does not have is an error, not ignored.

    A misspelt option (``exclude`` for ``exclude_items``) would otherwise be dropped
    silently and the answer would look right. The error keeps pydantic's location (``body``,
    the field) and type (``extra_forbidden``); its message lists the fields that exist.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="wrap")
    @classmethod
    def _name_allowed_fields(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(data)
        except ValidationError as exc:
            errors = exc.errors()
            if not any(e["type"] == "extra_forbidden" for e in errors):
                raise
            allowed = ", ".join(cls.model_fields)
            unknown = PydanticCustomError(
                "extra_forbidden", "unknown field (allowed: {allowed})", {"allowed": allowed}
            )
            line_errors: list[Any] = [
                {"type": unknown, "loc": e["loc"], "input": e["input"]}
                if e["type"] == "extra_forbidden"
                else e
                for e in errors
            ]
            try:
                named = ValidationError.from_exception_data(exc.title, line_errors)
            except (KeyError, TypeError):  # an error pydantic cannot rebuild: keep its text
                raise exc from None
            raise named from None


class ReloadIn(StrictBody):
    path: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None


@dataclass(frozen=True)
class RequestModels:
    """The request models of one app, with its configured limits (see the module doc).

    Typed ``Any``: the classes exist only once the config is known.
    """

    event_in: Any
    recommend_in: Any
    feedback_in: Any
    session_query: Any
    event_query: Any


def build_request_models(config: ServeConfig) -> RequestModels:
    """The request models with the limits of ``config``."""
    IdStr = Annotated[
        StrictStr,
        StringConstraints(min_length=1, max_length=config.max_id_length, pattern=NO_CONTROL),
    ]
    ItemId = Annotated[
        IdStr | IdInt,
        AfterValidator(str),
        Field(description="An item id: a string, or an integer (read as its decimal string)."),
    ]
    K = Annotated[int, Field(ge=1, le=config.max_k)]

    class EventIn(StrictBody):
        """One click. Only ``item_id`` is required."""

        item_id: ItemId
        event_type: EventType = "view"
        timestamp: Timestamp | None = Field(
            None, description="Unix seconds of the click (client clock); optional."
        )
        consent: StrictBool = Field(
            True,
            description="false: the click is used for this answer only and never stored, "
            "recorded or learned from (docs/privacy.md).",
        )
        price: Price | None = Field(
            None,
            description="Unit price of the item (a number >= 0): a purchase's revenue is "
            "price x quantity.",
        )
        quantity: Annotated[StrictInt, Field(ge=1, le=MAX_QUANTITY)] = Field(
            1, description="Items bought (purchases); 1 by default."
        )

        def revenue(self) -> float:
            """What a purchase earned (0 for other events or without a price)."""
            if self.event_type != "purchase" or self.price is None:
                return 0.0
            return float(self.price) * self.quantity

    class RecommendIn(StrictBody):
        """A stateless request: the session's items in click order."""

        items: list[ItemId] = Field(max_length=config.max_session_length)
        k: K = config.default_k
        session_id: IdStr | None = Field(
            None, description="Optional: assigns the A/B variant by stable hash."
        )
        timestamps: list[Timestamp] | None = Field(
            None,
            max_length=config.max_session_length,
            description="Optional click times, one per item.",
        )
        exclude_seen: bool | None = None
        exclude_items: list[ItemId] = Field([], max_length=config.max_exclude)
        categories: list[IdStr] = Field([], max_length=config.max_exclude)
        exclude_categories: list[IdStr] = Field([], max_length=config.max_exclude)
        available_only: bool = False
        fallback: bool = True
        details: bool = False
        explain: bool = Field(False, description="Add a reason to every item.")
        variant: VariantName | None = None
        objective: Objective | None = Field(None, description=OBJECTIVE_HELP)

        @model_validator(mode="after")
        def _times_match(self) -> "RecommendIn":
            if self.timestamps is not None and len(self.timestamps) != len(self.items):
                raise ValueError("timestamps must have one value per item")
            return self

        def options(self) -> Options:
            return request_options(
                config,
                k=self.k,
                exclude_seen=self.exclude_seen,
                fallback=self.fallback,
                categories=self.categories,
                exclude_categories=self.exclude_categories,
                available_only=self.available_only,
                exclude_items=self.exclude_items,
                details=self.details,
                variant=self.variant,
                explain=self.explain,
                objective=self.objective,
            )

    class FeedbackIn(StrictBody):
        """A click on an item of a recommendation answer."""

        recommendation_id: Annotated[str, StringConstraints(pattern=RECOMMENDATION_ID)]
        item_id: ItemId

    class SessionQuery(BaseModel):
        """Query parameters of the session endpoints (one model: validated in one call)."""

        k: K = Field(config.default_k, description="How many items (at most).")
        exclude_seen: bool | None = Field(
            None,
            description="Never recommend the session's items (default: "
            + (
                "yes unless the model recommends repeats"
                if config.exclude_seen is None
                else str(config.exclude_seen).lower()
            )
            + ").",
        )
        fallback: bool = Field(True, description="Complete short lists with popular items.")
        category: list[IdStr] = Field(
            [], max_length=config.max_exclude, description="Only these categories (repeat)."
        )
        exclude_category: list[IdStr] = Field([], max_length=config.max_exclude)
        available_only: bool = False
        exclude_item: list[IdStr] = Field([], max_length=config.max_exclude)
        details: bool = Field(False, description="Add catalog fields to the items.")
        explain: bool = Field(False, description="Add a reason to every item.")
        variant: VariantName | None = Field(None, description="Force an A/B variant (QA, replay).")
        objective: Objective | None = Field(None, description=OBJECTIVE_HELP)

        def options(self) -> Options:
            return request_options(
                config,
                k=self.k,
                exclude_seen=self.exclude_seen,
                fallback=self.fallback,
                categories=self.category,
                exclude_categories=self.exclude_category,
                available_only=self.available_only,
                exclude_items=self.exclude_item,
                details=self.details,
                variant=self.variant,
                explain=self.explain,
                objective=self.objective,
            )

    class EventQuery(SessionQuery):
        recommend: bool = Field(
            True, description="Answer with recommendations (else an acknowledgement)."
        )

    return RequestModels(
        event_in=EventIn,
        recommend_in=RecommendIn,
        feedback_in=FeedbackIn,
        session_query=SessionQuery,
        event_query=EventQuery,
    )


# ------------------------------------------------------------------ responses
class SessionItemOut(BaseModel):
    item_id: str
    weight: float


class NeighbourOut(BaseModel):
    session: int = Field(description="Index of the training session in the training data.")
    weight: float


class ReasonOut(BaseModel):
    """Why the item is recommended (``explain=true``); see ``Recommender.explain``."""

    kind: Literal[
        "session_items",
        "neighbours",
        "embedding",
        "ablation",
        "repeat",
        "popular",
        "category",
        "trending",
        "new_item",
    ] = Field(
        description="The model's reason (``Recommender.explain``: session_items, neighbours, "
        "embedding, ablation, repeat) or, for a fallback item, its list (popular, category, "
        "trending) or a new catalog item's (new_item)."
    )
    session_items: list[SessionItemOut]
    neighbour_sessions: list[NeighbourOut]


class ItemOut(BaseModel):
    item_id: str
    score: float
    source: Literal["model", "new_item", "category", "trending", "popular"]
    category: str | None = None
    available: bool | None = None
    attributes: dict[str, Any] | None = None
    reason: ReasonOut | None = None


class RecommendationOut(BaseModel):
    recommendation_id: str
    model: str
    model_version: str
    variant: str
    fallback: bool
    degraded: bool
    items: list[ItemOut]
    session_id: str | None = None
    event_count: int | None = None


class EventAck(BaseModel):
    session_id: str
    event_count: int
    degraded: bool


class SessionEnded(BaseModel):
    session_id: str
    handed_over: bool = Field(
        description="true when clicks of the session went to live learning; false when it had "
        "none left to hand over (unknown, already handed over, or sent without consent)"
    )


class ErrorOut(BaseModel):
    error: str
    message: str
    details: Any = None


ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorOut, "description": "Invalid input"},
    413: {"model": ErrorOut, "description": "Body too large"},
}
"""The error answers every API endpoint documents."""
ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No token"},
    403: {"model": ErrorOut, "description": "Wrong token or admin disabled"},
}
"""The error answers of the admin endpoints."""
