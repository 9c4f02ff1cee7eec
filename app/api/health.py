from __future__ import annotations

import asyncio

from fastapi import APIRouter
from sqlalchemy import text
from starlette.responses import JSONResponse

from app.api.deps import EngineDep
from app.domain.schemas import Health

router = APIRouter(tags=["health"])

HEALTH_TIMEOUT_S = 2.0


async def _database_ok(engine: EngineDep) -> bool:
    async def ping() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(ping(), HEALTH_TIMEOUT_S)
    except Exception:  # any failure to reach the database is "unavailable", never a 500
        return False
    return True


@router.get(
    "/health",
    response_model=Health,
    responses={
        503: {
            "model": Health,
            "description": (
                'The database cannot be reached (within 2 s): `{"status": "degraded", "database": "unavailable"}`.'
            ),
        }
    },
    summary="Liveness and database reachability",
    description=(
        'Always public. 200 `{"status": "ok", "database": "ok"}` when `SELECT 1` succeeds within 2 seconds; '
        'otherwise 503 `{"status": "degraded", "database": "unavailable"}` (never a 500).'
    ),
)
async def health(engine: EngineDep) -> JSONResponse:
    if await _database_ok(engine):
        return JSONResponse({"status": "ok", "database": "ok"})
    return JSONResponse({"status": "degraded", "database": "unavailable"}, status_code=503)
