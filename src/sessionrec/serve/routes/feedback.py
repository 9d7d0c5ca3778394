"""``POST /v1/feedback``: a click on a recommended item, counted per A/B variant (once per
answer and item).

No ``from __future__ import annotations`` here: FastAPI must see the handler's body model,
built per app, as a real class, not as a string it cannot resolve.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sessionrec.serve.deps import ServiceState, service
from sessionrec.serve.errors import ApiError, json_response
from sessionrec.serve.schemas import ERRORS, ErrorOut, RequestModels
from sessionrec.serve.store import StoreUnavailable


async def record_feedback(request: Request, state: ServiceState, body: Any) -> Response:
    """Count the click ``body`` (a ``FeedbackIn``) against the answer it came from."""
    try:
        result = await state.require_store().feedback(body.recommendation_id, str(body.item_id))
    except StoreUnavailable:
        state.store_failed("feedback")
        state.metrics.feedback.labels("unknown", "store_unavailable").inc()
        return json_response(
            {
                "recommendation_id": body.recommendation_id,
                "item_id": str(body.item_id),
                "counted": False,
                "status": "store_unavailable",
                "degraded": True,
            }
        )
    variant = result.variant or "unknown"
    request.state.variant = variant
    state.metrics.feedback.labels(variant, result.status).inc()
    if result.status == "unknown_recommendation":
        raise ApiError(
            404,
            "unknown_recommendation",
            f"no recommendation {body.recommendation_id!r} (unknown or expired)",
        )
    if result.status == "not_recommended":
        raise ApiError(
            422,
            "not_recommended",
            f"item {body.item_id!r} was not in recommendation {body.recommendation_id!r}",
        )
    return json_response(
        {
            "recommendation_id": body.recommendation_id,
            "item_id": str(body.item_id),
            "variant": variant,
            "counted": result.status == "counted",
            "status": result.status,
            "degraded": False,
        }
    )


def build_router(requests: RequestModels) -> APIRouter:
    """The route, with its body validated by FastAPI against the app's ``FeedbackIn``."""
    router = APIRouter()
    feedback_in = requests.feedback_in

    # The body's model carries the configured id length, so this signature is built per app;
    # the work is in record_feedback.
    @router.post(
        "/v1/feedback",
        responses={**ERRORS, 404: {"model": ErrorOut, "description": "Unknown recommendation"}},
        tags=["feedback"],
        summary="A click on a recommended item (counted once per answer and item)",
    )
    async def post_feedback(
        request: Request,
        body: feedback_in,  # type: ignore[valid-type]
        state: Annotated[ServiceState, Depends(service)],
    ) -> Response:
        return await record_feedback(request, state, body)

    return router
