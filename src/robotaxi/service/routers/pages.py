"""The web pages: rider app `/`, in-car screen `/car/<vehicle>`, a shared ride
`/share/<token>`, operations `/ops`."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"
router = APIRouter(include_in_schema=False)
# everything the pages load comes from this server: no CDN, no tiles, works offline
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "media-src 'self' blob:; "
        "connect-src 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, headers=PAGE_HEADERS)


@router.get("/")
def rider_app() -> FileResponse:
    return _page("index.html")


@router.get("/car/{vehicle_id}")
def car_screen(vehicle_id: str) -> FileResponse:
    # the page reads the car id from its own URL; no data is served without a token
    return _page("car.html")


@router.get("/share/{token}")
def shared_ride_page(token: str) -> FileResponse:
    # the page reads the link's token from its own URL and asks /api/shared/<token>
    return _page("share.html")


@router.get("/ops")
def operations() -> FileResponse:
    return _page("ops.html")
