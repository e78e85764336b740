"""Evidence packs of turns (agent key): 202 while being computed, 200 when ready or failed."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse

from assistant.api.context import AgentDep, ContextDep
from assistant.api.errors import ApiError
from assistant.api.openapi import ERRORS
from assistant.api.public import public_pack
from assistant.turn.schemas import EvidencePack

router = APIRouter(tags=["evidence"])

RETRY_SECONDS = 2


def _pack(context: ContextDep, evidence_id: str) -> EvidencePack:
    pack = context.components.evidence.get(evidence_id)
    if pack is None:
        raise ApiError(
            404,
            "evidence_not_found",
            f"no turn has evidence id {evidence_id!r} (its session may have been deleted)",
        )
    return pack


@router.get(
    "/v1/evidence/{evidence_id}",
    response_model=EvidencePack,
    summary="Why a turn came out as it did: attributions and heatmaps (agent key)",
    description=(
        "202 with status 'pending' (and Retry-After) while the explanations are computed; 200 "
        "with status 'ready', or 'failed' with the error; 404 for an unknown id."
    ),
    responses=ERRORS
    | {
        202: {"model": EvidencePack, "description": "Still being computed"},
        404: ERRORS[400] | {"description": "Unknown evidence id"},
    },
)
def get_evidence(
    evidence_id: str, response: Response, context: ContextDep, _agent: AgentDep
) -> EvidencePack:
    pack = _pack(context, evidence_id)
    if pack.status == "pending":
        response.status_code = 202
        response.headers["Retry-After"] = str(RETRY_SECONDS)
    return public_pack(pack)


@router.get(
    "/v1/evidence/{evidence_id}/heatmaps/{file_name}",
    response_class=FileResponse,
    summary="A Grad-CAM heatmap PNG named in the evidence pack (agent key)",
    responses=ERRORS | {200: {"content": {"image/png": {}}, "description": "The PNG"}},
)
def get_heatmap(
    evidence_id: str, file_name: str, context: ContextDep, _agent: AgentDep
) -> FileResponse:
    pack = _pack(context, evidence_id)
    path = context.components.evidence.listed_heatmap(pack, file_name)
    if path is None:
        listed = {heatmap.file for heatmap in pack.heatmaps}
        status = "is still being computed" if pack.status == "pending" else "has no such heatmap"
        raise ApiError(
            404,
            "heatmap_not_found",
            f"evidence {evidence_id!r} {status}: {file_name!r}; the pack lists "
            f"{sorted(listed) or 'no heatmaps'}",
        )
    return FileResponse(path, media_type="image/png")
