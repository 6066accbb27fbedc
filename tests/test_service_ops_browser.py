"""/ops in the browser with a car that asks for help: its own live city (a SUMO simulation per
process, so not beside test_service_browser's module server), a car held behind stalled cars."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from test_service_browser import (
    ARTIFACTS,
    CHROMIUM,
    OPERATOR,
    book_over_http,
    browser_settings,
    chromium,
    serving,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.sumo,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"chromium is not installed at {CHROMIUM}"),
]


def test_ops_shows_what_a_car_that_asks_for_help_has_around_it(
    tmp_path: Path, map_cache: Path
) -> None:
    """A car held behind stalled cars asks for help; /ops draws its surroundings: the car, the
    road users near it (the stalled ones standing) and its route; the operator's answers
    ("pass opposite", "lane closed") and the car's verdict on each are shown."""
    import httpx
    from playwright.sync_api import expect

    from robotaxi.service.settings import serve_run_config
    from test_remote_assistance import block_entrance, route_ahead, unblock

    base = browser_settings(tmp_path, map_cache)
    run = serve_run_config(
        **{
            "fleet.size": 3, "hours": 2.0, "map.cache_dir": map_cache,
            "world.emergency_per_hour": 0.0, "fleet.assist_after_s": 20.0,
            "world.stuck_reroute_s": 3600.0, "world.teleport_time_s": 3600.0,
        }
    )  # fmt: skip
    with serving(base.model_copy(update={"run": run})) as (url, app):
        live = app.state.runtime.live
        ride, me = book_over_http(url, "Mae", (0.1, 0.9), (0.9, 0.1))

        def ride_state() -> dict[str, Any]:
            body: dict[str, Any] = httpx.get(f"{url}/api/rides/{ride}", headers=me).json()
            return body

        deadline = time.monotonic() + 60
        while ride_state()["state"] != "en_route" and time.monotonic() < deadline:
            time.sleep(0.2)
        car = ride_state()["vehicle_id"]
        with live._lock:  # the live city steps in the server's thread: hold it still
            ahead = route_ahead(car)
            assert len(ahead) >= 3, ahead
            blockers = block_entrance(live, ahead[2], "ops")
        op = {"Authorization": f"Bearer {OPERATOR}"}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(
            r["open"] for r in httpx.get(f"{url}/api/assistance", headers=op).json()
        ):
            time.sleep(0.5)
        assert any(r["open"] for r in httpx.get(f"{url}/api/assistance", headers=op).json())
        try:
            with chromium() as browser:
                page = browser.new_page(viewport={"width": 1200, "height": 800})
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(f"{url}/ops")
                page.get_by_label("Operator token").fill(OPERATOR)
                page.get_by_role("button", name="Connect").click()
                picture = page.locator("#assistance svg.surroundings").first
                expect(picture).to_have_attribute(
                    "aria-label",
                    re.compile(
                        rf"^around car {car} \(40 m, north up\): [1-9]\d* road users, "
                        r"[1-9]\d* of them standing; its route in blue$"
                    ),
                    timeout=20_000,
                )
                expect(picture.locator("polygon")).to_have_count(1)  # the car
                picture.locator("xpath=../..").screenshot(
                    path=str(ARTIFACTS / "6c-ops-assistance.png")
                )
                # leave to pass through the opposite lane is offered, labelled with the car;
                # this car follows the fleet's routing only, so it refuses and says why
                pass_label = "Pass using the opposite lane when clear"
                page.get_by_role("button", name=f"{pass_label} (car {car})").click()
                expect(page.locator("#assist-result")).to_have_text(
                    f"Sent to {car}: {pass_label.lower()}."
                )
                expect(page.locator("#assistance")).to_contain_text(
                    "pass opposite: refused (no pass through the oncoming lane: this car follows "
                    "the fleet's routing only",
                    timeout=20_000,
                )
                # "this lane is closed": sent, checked by the car (SUMO's lane changer here),
                # and its answer shown — taken, or refused with the reason
                closed_label = "Lane closed ahead: use another lane"
                page.get_by_role("button", name=f"{closed_label} (car {car})").click()
                expect(page.locator("#assist-result")).to_have_text(
                    f"Sent to {car}: {closed_label.lower()}."
                )
                expect(page.locator("#assistance")).to_contain_text(
                    re.compile(r"lane closed: (accepted|refused \(no other lane to take: .+\))"),
                    timeout=20_000,
                )
                page.locator("#assistance").screenshot(
                    path=str(ARTIFACTS / "6d-ops-assistance-lane-closed.png")
                )
                assert not errors, errors
        finally:
            with live._lock:
                unblock(blockers)
