"""Wire models of accounts: sessions (password logins), password changes and named API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field, StrictStr, StringConstraints

from app.domain.schemas import Name, Password, Storable, Strict

# What a login may send: any string up to the longest password (checked against the stored hash).
GivenPassword = Annotated[StrictStr, StringConstraints(min_length=1, max_length=128), Storable]
GivenEmail = Annotated[StrictStr, StringConstraints(min_length=1, max_length=254), Storable]
TOKEN_DESCRIPTION = "Shown only in this response (stored hashed); send it as `Authorization: Bearer <api_token>`."


class SessionCreate(Strict):
    email: GivenEmail
    password: GivenPassword


class SessionCreated(BaseModel):
    api_token: str = Field(description=TOKEN_DESCRIPTION)
    token_id: UUID = Field(description='The new token, named "session", as listed by GET /v1/users/me/tokens.')


class PasswordChange(Strict):
    current_password: GivenPassword | None = Field(
        default=None, description="Required when the account has a password; ignored when it has none."
    )
    new_password: Password


class TokenCreate(Strict):
    name: Name


class TokenOut(BaseModel):
    id: UUID
    name: str
    created_at: datetime
    last_used_at: datetime | None = Field(
        description="When the token was last used, to within a minute (token_touch_interval_s); null if never."
    )


class TokenCreated(BaseModel):
    id: UUID
    name: str
    api_token: str = Field(description=TOKEN_DESCRIPTION)
    created_at: datetime
