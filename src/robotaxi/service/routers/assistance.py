"""Remote assistance (operator token): the cars that asked for help, and the answers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status

from robotaxi.fleet.assistance import AssistanceError, AssistAnswer, NoSuchAssistRequestError
from robotaxi.service.deps import LiveDep, Operator, RuntimeDep
from robotaxi.service.routers.operations import OPERATOR_ERRORS
from robotaxi.service.runtime import ServiceRuntime
from robotaxi.service.schemas import (
    AssistanceAnswerCreate,
    AssistancePublic,
    error_responses,
)
from robotaxi.service.views import latlon

router = APIRouter(prefix="/api/assistance", tags=["operations"])


def _public(runtime: ServiceRuntime, row: dict[str, Any]) -> AssistancePublic:
    return AssistancePublic(**row, where=latlon(runtime, (row["x"], row["y"])))


@router.get("", responses=OPERATOR_ERRORS)
def requests(_: Operator, runtime: RuntimeDep, live: LiveDep) -> list[AssistancePublic]:
    """Cars that asked for help on their way (stood still, not at a stop): the open requests
    first, oldest first, then those closed in the last 15 minutes."""
    rows = sorted(live.assistance(), key=lambda r: (not r["open"], r["opened_s"]))
    return [_public(runtime, row) for row in rows]


@router.post(
    "/{request_id}/answer",
    responses=error_responses(
        400,
        401,
        403,
        404,
        409,
        413,
        e404="no such request (open, or closed in the last 15 minutes)",
        e409="the request is closed: the car moves again",
    ),
)
def answer(
    request_id: str,
    body: AssistanceAnswerCreate,
    _: Operator,
    runtime: RuntimeDep,
    live: LiveDep,
) -> AssistancePublic:
    """Answer a car with context: 'another_way' (this street is blocked), 'wait' (it will
    clear), 'pull_over' (at the next safe kerb), 'pass_opposite' (you may pass the blocker
    using the opposite lane when clear, across a solid centre line: the car waits for a gap
    in the oncoming traffic itself) or 'lane_closed' (the lane it is in is closed ahead: it
    moves to another lane of its street that leads on along its way, into a gap it finds
    itself, and refuses on a street with no such lane); never remote driving. The car checks
    the answer before acting: a refusal and its reason show in `answers` and `refusal` after
    the next tick."""
    try:
        row = live.answer_assistance(request_id, AssistAnswer(body.answer))
    except NoSuchAssistRequestError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except AssistanceError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return _public(runtime, row)
