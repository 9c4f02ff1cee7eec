"""The web app for people (issue #15): server-rendered pages at `/`, served by the same service as the API.

Every page calls the same services as the JSON edge (app/api): the web is another edge, never another
implementation of a money rule. Pages work without JavaScript; htmx (served from /static, like every
asset) adds the live split preview.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from app.web import account, expense_pages, groups, recurring_pages, settle_pages, transfer_pages
from app.web.core import STATIC


def install(app: FastAPI) -> None:
    for module in (account, groups, expense_pages, settle_pages, recurring_pages, transfer_pages):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
