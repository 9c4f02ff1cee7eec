"""How a form's write reaches the services: its Idempotency-Key claim, and a double click.

Each form carries its own key (a hidden field made when the form was rendered), claimed exactly as the
API claims `Idempotency-Key`, over the same JSON body the API would take: a second submission of the
same form replays the first (nothing new is written), and the same form sent with other content is
refused. A second click that arrives while the first is still being written waits for it, then replays.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from starlette.requests import Request

from app.core.errors import DomainError
from app.domain.idempotency import fingerprint, parse_key
from app.ledger.commands import Claim

T = TypeVar("T")
IN_USE_WAITS = 40
IN_USE_WAIT_S = 0.05


def claim_for(request: Request, user_id: uuid.UUID, key: str, body: dict[str, Any]) -> Claim:
    """The claim of a form's key (400 when it is not a valid key; none at all when the field is empty)."""
    parsed = parse_key(key) if key else None
    fp = fingerprint("POST", request.url.path, orjson.dumps(body)) if parsed is not None else b""
    ttl_hours = request.app.state.settings.idempotency_ttl_hours
    return Claim(user_id=user_id, key=parsed, fingerprint=fp, ttl_hours=ttl_hours)


async def waiting_for_first_click(write: Callable[[], Awaitable[T]]) -> T:
    """Run the write; while the same key is being written by an earlier click, wait and try again (the
    retry then replays the first click's result)."""
    for _ in range(IN_USE_WAITS):
        try:
            return await write()
        except DomainError as exc:
            if exc.code != "idempotency-key-in-use":
                raise
        await asyncio.sleep(IN_USE_WAIT_S)
    return await write()
