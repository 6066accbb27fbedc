"""The web pages in headless Chromium: book on the map, meet the car, ride, get the receipt.

Debian's /usr/bin/chromium driven by Playwright for Python (no browser of Playwright's own is
needed). Screenshots go to test-artifacts/ beside the tests (gitignored).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from robotaxi.service.app import create_app
from robotaxi.service.settings import ServiceSettings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from playwright.sync_api import Browser

CHROMIUM = Path("/usr/bin/chromium")
OPERATOR = "browser-test-operator"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.sumo,  # the server fixture starts the live city
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"chromium is not installed at {CHROMIUM}"),
]


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, with the flags this machine needs; closed at the end."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def serving(settings: ServiceSettings) -> Iterator[tuple[str, FastAPI]]:
    """The service over real HTTP (uvicorn in a thread of this process) on a free port:
    its URL and the app (its runtime holds the live city)."""
    import socket

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(settings.model_copy(update={"port": port}))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uvicorn_server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert uvicorn_server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=30)


def browser_settings(data_dir: Path, map_cache: Path) -> ServiceSettings:
    """Three cars on the grid city at 30× real time, no background traffic, no ambulances, no
    simulated riders: what the browser tests book is all that happens."""
    return ServiceSettings(
        fleet=3,
        speed=30.0,
        hours=2.0,
        data_dir=data_dir,
        operator_token=OPERATOR,
        map_cache_dir=map_cache,
        background_traffic=False,
        ev_per_hour=0.0,
        riders_per_hour=0.0,
    )


def book_over_http(
    url: str, name: str, pickup: tuple[float, float], dropoff: tuple[float, float]
) -> tuple[str, dict[str, str]]:
    """A rider signs up and books over HTTP; pick-up and drop-off are fractions (x, y) of the
    map's extent. Returns the ride id and the rider's headers."""
    import httpx

    bounds = httpx.get(f"{url}/api/map").json()["bounds"]

    def at(fx: float, fy: float) -> dict[str, float]:
        return {
            "lat": bounds["south"] + fy * (bounds["north"] - bounds["south"]),
            "lon": bounds["west"] + fx * (bounds["east"] - bounds["west"]),
        }

    token = httpx.post(f"{url}/api/riders", json={"name": name}).json()["token"]
    me = {"Authorization": f"Bearer {token}"}
    booked = httpx.post(
        f"{url}/api/rides", json={"pickup": at(*pickup), "dropoff": at(*dropoff)}, headers=me
    )
    assert booked.status_code == 201, booked.text
    return str(booked.json()["id"]), me


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, map_cache: Path) -> Iterator[str]:
    with serving(browser_settings(tmp_path_factory.mktemp("browser"), map_cache)) as (url, _):
        yield url


def test_rider_books_meets_the_car_rides_and_gets_a_receipt(server: str) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        page.goto(f"{server}/")
        page.get_by_label("Your name").fill("Ada")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#rider-name")).to_have_text("Ada")

        # pick-up, then destination, on the map drawn from the road network
        canvas = page.locator("#map")
        box = canvas.bounding_box()
        assert box is not None
        # pick-up by keyboard: focus the map, move the cross-hair, Enter
        canvas.focus()
        for key in ["ArrowLeft"] * 8 + ["ArrowDown"] * 8:
            page.keyboard.press(key)
        page.keyboard.press("Enter")
        expect(page.locator("#pickup-text")).not_to_have_text("not set")
        expect(page.locator("#dropoff-text")).to_have_text("not set")
        # the rider chooses where the car stops among the kerb spots near them
        spots = page.locator("#pickup-spots button")
        expect(spots.first).to_contain_text(re.compile(r"\d+ min walk \(\d+ m\)"))
        # ... each with when the car that would come could be there (the quote's ETA)
        expect(spots.first).to_contain_text(re.compile(r"car there in (under a minute|\d+ min)"))
        chosen = spots.nth(1) if spots.count() > 1 else spots.first
        spot_name = chosen.inner_text().split(" · ")[0]
        chosen.click()
        expect(chosen).to_have_attribute("aria-pressed", "true")
        expect(page.locator("#pickup-text")).to_have_text(spot_name)
        canvas.click(position={"x": box["width"] * 0.7, "y": box["height"] * 0.3})
        expect(page.locator("#dropoff-text")).not_to_have_text("not set")
        # the tapped pick-up is named by its street (the grid city's generated names)
        expect(page.locator("#pickup-text")).to_have_text(re.compile(r"(St|Ave|Blvd)\b"))
        # ... and the destination is changed by searching a corner, typed as riders do
        page.get_by_label("Search a street, corner or place").fill("8th and i bl")
        page.get_by_role("button", name="I Blvd & 8th Ave (intersection)").click()
        expect(page.locator("#dropoff-text")).to_have_text("I Blvd & 8th Ave")
        page.screenshot(path=str(ARTIFACTS / "0-place-search.png"))
        page.get_by_role("button", name="Get quote").click()
        expect(page.locator("#quote-details")).to_contain_text("Pick-up in")
        expect(page.locator("#quote-details")).to_contain_text(re.compile(r"To\s*(I Blvd|8th Ave)"))
        # the fare, as a rider reads it: a range in dollars and cents
        expect(page.locator("#quote-details")).to_contain_text(
            re.compile(r"Fare\s*\$\d+\.\d\d – \$\d+\.\d\d")
        )
        page.screenshot(path=str(ARTIFACTS / "1-quote.png"))

        page.get_by_role("button", name="Book ride").click()
        status = page.locator("#ride-status")
        # the rider shares the trip: a link for someone else to follow the car
        page.get_by_role("button", name="Share trip").click()
        share_link = page.locator("#share-link")
        expect(share_link).to_be_visible()
        share_url = share_link.get_attribute("href") or ""
        assert re.search(r"/share/[\w-]{40,}$", share_url), share_url
        # the car approaches: the page follows it until it stops at the curb
        distances: list[float] = []
        deadline = time.monotonic() + 40
        while status.get_attribute("data-state") != "arrived":
            assert time.monotonic() < deadline, "the car never arrived"
            text = page.locator("#ride-distance").inner_text()
            found = re.match(r"(\d+) m from your pick-up", text)
            if found and (not distances or float(found.group(1)) != distances[-1]):
                distances.append(float(found.group(1)))
                if len(distances) == 1:
                    page.screenshot(path=str(ARTIFACTS / "2-car-approaching.png"))
            page.wait_for_timeout(100)
        # the seed places the nearest free car a few hundred metres away: seen at least
        # twice, closing in
        assert len(distances) >= 2, f"the car was not followed on its way: {distances}"
        assert distances[-1] < distances[0]
        expect(status).to_have_text("Your car is here")
        # whoever got the link sees the car waiting, without an account
        follower = context.new_page()
        follower.on("pageerror", lambda exc: errors.append(str(exc)))
        follower.goto(share_url)
        expect(follower.locator("#shared-status")).to_have_text("The car is waiting for Ada")
        follower.screenshot(path=str(ARTIFACTS / "2b-shared-ride.png"))
        # at the car: find it (honk and flash), then unlock it from the app
        expect(page.locator("#car-signal")).to_contain_text("locked until you unlock it")
        page.get_by_role("button", name="Honk & flash").click()
        expect(page.locator("#car-signal")).to_have_text(
            "Your car is honking and flashing its lights."
        )
        page.get_by_role("button", name="Unlock car").click()
        expect(page.get_by_role("button", name="Car unlocked")).to_be_disabled()
        car_link = page.get_by_role("link", name="Open the in-car screen")
        car_url = server + (car_link.get_attribute("href") or "")

        car = context.new_page()
        car.on("pageerror", lambda exc: errors.append(str(exc)))
        # the car is there already: the page greets at once, fetching the server's WAV
        with car.expect_response(
            lambda r: r.url.endswith("/greeting.wav"), timeout=15_000
        ) as wav_info:
            car.goto(car_url)
        wav = wav_info.value
        assert wav.status == 200 and wav.headers["content-type"] == "audio/wav"
        greeting = car.locator("#greeting")
        expect(greeting).to_have_text("Hey there, Ada!", timeout=10_000)
        assert greeting.get_attribute("aria-live") == "assertive"
        # said with the server's voice (espeak-ng), or the browser's if it may not play
        expect(greeting).to_have_attribute("data-voice", re.compile("server|browser"))
        expect(car.locator("#steering")).to_contain_text("not available")
        expect(car.locator("#nearby-source")).to_contain_text("this car")
        # the rider's screen speaks of this car, not of how the city is simulated
        for said in (car.locator("body").inner_text(), page.locator("body").inner_text()):
            assert not re.search(r"SUMO|simulat|fidelity|sim clock", said), said
        start = car.get_by_role("button", name="Start ride")
        expect(start).to_be_disabled()
        car.screenshot(path=str(ARTIFACTS / "3-in-car-greeting.png"))

        car.get_by_role("button", name="I'm in the car").click()
        expect(car.locator("#start-reason")).to_contain_text("seat belt")
        expect(start).to_be_disabled()
        car.get_by_label("Seat belt fastened").check()
        expect(start).to_be_enabled()
        start.click()
        expect(car.locator("#ride-status")).to_have_text(
            "On the way to your destination", timeout=10_000
        )
        expect(car.get_by_role("button", name="Pull over")).to_be_enabled()
        car.screenshot(path=str(ARTIFACTS / "4-in-car-driving.png"))
        car.get_by_role("button", name="Help").click()
        # a common reason is one press: the ticket carries the ride and the car
        car.get_by_role("button", name="The car is too hot or too cold").click()
        expect(car.locator("#help-result")).to_contain_text("Support ticket")
        first_ticket = car.locator("#help-result").inner_text()
        car.get_by_label("What is wrong?").fill("The window does not open")
        car.get_by_role("button", name="Send to support").click()
        expect(car.locator("#help-result")).not_to_have_text(first_ticket)
        expect(car.locator("#help-result")).to_contain_text("Support ticket")
        car_ticket = re.search(r"ticket (\d+)", car.locator("#help-result").inner_text())
        assert car_ticket is not None

        receipt = page.locator("#receipt")
        expect(receipt).to_be_visible(timeout=45_000)
        expect(status).to_have_text("Ride complete")
        expect(follower.locator("#shared-status")).to_have_text(
            "Ada has arrived: the ride is over", timeout=10_000
        )
        expect(page.locator("#receipt-body")).to_contain_text("completed")
        expect(page.locator("#receipt-body")).to_contain_text(
            re.compile(r"Fare\s*\$\d+\.\d\d · Distance and time of your ride")
        )
        expect(page.locator("#receipt-body")).to_contain_text(re.compile(r"\d+(\.\d+)? k?m"))
        page.screenshot(path=str(ARTIFACTS / "5-receipt.png"))
        ride_id = page.locator("#receipt-body dd").first.inner_text()

        # the rider opens a ticket about the ride from the app
        page.get_by_label("What can we help with?").fill("I was charged twice")
        page.locator("#ticket-ride").focus()  # loads the rider's rides
        expect(page.locator(f'#ticket-ride option[value="{ride_id}"]')).to_have_count(1)
        page.locator("#ticket-ride").select_option(ride_id)
        page.get_by_role("button", name="Send to support", exact=True).click()
        expect(page.locator("#ticket-result")).to_contain_text("sent")
        app_ticket = re.search(r"Ticket (\d+)", page.locator("#ticket-result").inner_text())
        assert app_ticket is not None
        expect(page.locator("#tickets")).to_contain_text("waiting for support")

        ops = context.new_page()
        ops.on("pageerror", lambda exc: errors.append(str(exc)))
        ops.goto(f"{server}/ops")
        ops.get_by_label("Operator token").fill("wrong")
        ops.get_by_role("button", name="Connect").click()
        expect(ops.locator("#login-error")).to_contain_text("operator token required")
        ops.get_by_label("Operator token").fill(OPERATOR)
        ops.get_by_role("button", name="Connect").click()
        expect(ops.locator("#cars tr")).to_have_count(3)
        # KPIs in words with units, and small charts of them over time
        expect(ops.locator("#kpis")).to_contain_text("Pick-up wait, median")
        expect(ops.locator("#kpis")).to_contain_text("Cars in the fleet")
        expect(ops.locator("#charts figure")).to_have_count(4)
        # the map's cars carry their ids (the canvas is drawn from these markers)
        labels = ops.evaluate("() => window.__opsMarkers.map((m) => m.label)")
        assert any(str(label).startswith("taxi") for label in labels), labels
        ops.locator("#kpi-title").locator("xpath=..").screenshot(
            path=str(ARTIFACTS / "6a-ops-kpis.png")
        )
        ops.locator("#charts").screenshot(path=str(ARTIFACTS / "6b-ops-charts.png"))
        expect(ops.locator("#charts svg[role=img]").first).to_have_attribute(
            "aria-label", re.compile(r"^Rides so far, over .*: now requested \d+")
        )
        expect(ops.locator("#tickets")).to_contain_text("The window does not open")
        expect(ops.locator("#tickets")).to_contain_text("I was charged twice")
        expect(ops.locator("#tickets")).to_contain_text("too hot or too cold")
        # the operator sees who and which car, and replies to both from /ops
        expect(ops.locator("#tickets")).to_contain_text("Ada")
        for ticket, answer in [
            (car_ticket.group(1), "Open it with the switch by the handle."),
            (app_ticket.group(1), "You were charged once; the second line was a hold."),
        ]:
            ops.get_by_role("button", name=f"Reply to ticket {ticket}", exact=True).click()
            expect(ops.get_by_label("Ticket number")).to_have_value(ticket)
            ops.get_by_label("Reply to the rider").fill(answer)
            ops.get_by_role("button", name="Send reply").click()
            expect(ops.locator("#reply-result")).to_contain_text(f"ticket {ticket} is answered")
        # ... and the rider reads the replies: in the app and on the car's screen
        expect(page.locator("#tickets")).to_contain_text(
            "Support: You were charged once", timeout=10_000
        )
        expect(page.locator("#tickets")).to_contain_text("support replied")
        page.screenshot(path=str(ARTIFACTS / "5b-support-reply.png"))
        expect(car.locator("#support-replies")).to_contain_text(
            "Support: Open it with the switch by the handle.", timeout=10_000
        )
        car.screenshot(path=str(ARTIFACTS / "5c-in-car-support-reply.png"))
        expect(ops.locator("#kpis")).to_contain_text("completed")
        # an operator refunds a dollar of the ride's fare
        ops.get_by_label("Ride id").fill(ride_id)
        ops.get_by_label("Amount in cents").fill("100")
        ops.get_by_label("Reason").fill("a bumpy ride")
        ops.get_by_role("button", name="Refund").click()
        expect(ops.locator("#refund-result")).to_contain_text(
            re.compile(r"fare \$\d+\.\d\d \(refunded \$1\.00\)")
        )
        ops.screenshot(path=str(ARTIFACTS / "6-operations.png"))
        assert errors == []
    for name in (
        "1-quote",
        "2-car-approaching",
        "3-in-car-greeting",
        "5-receipt",
        "5b-support-reply",
        "6-operations",
    ):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000


def test_pick_up_spots_follow_the_fleet_while_the_rider_chooses(server: str) -> None:
    """The spots' "car there in …" is looked up again every 30 s while the rider chooses;
    the spot the rider chose stays chosen."""
    from playwright.sync_api import expect

    with chromium() as browser:
        page = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.clock.install()  # the page's timers, moved on below (time flows meanwhile)
        page.goto(f"{server}/")
        page.get_by_label("Your name").fill("Grace")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#rider-name")).to_have_text("Grace")
        page.locator("#map").focus()
        page.keyboard.press("Enter")
        spots = page.locator("#pickup-spots button")
        expect(spots.first).to_contain_text(re.compile(r"car there in|no free car"))
        chosen = spots.nth(1) if spots.count() > 1 else spots.first
        chosen.click()
        expect(chosen).to_have_attribute("aria-pressed", "true")
        with page.expect_request(lambda r: "/api/places/pickup-spots" in r.url) as looked_up:
            page.clock.fast_forward(31_000)
        assert looked_up.value.response() is not None
        expect(spots.first).to_contain_text(re.compile(r"car there in|no free car"))
        expect(chosen).to_have_attribute("aria-pressed", "true")  # rebuilt, still chosen
        assert errors == []


def test_api_docs_render_offline(server: str) -> None:
    """/docs draws the whole API with nothing fetched from outside this server."""
    from playwright.sync_api import Route, expect

    outside: list[str] = []

    def offline(route: Route) -> None:
        # as with no internet: anything not from this server fails (and is recorded)
        if route.request.url.startswith(server):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        context.route("**/*", offline)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        failed: list[str] = []
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.goto(f"{server}/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("robotaxi")
        expect(page.locator(".opblock-summary-path", has_text="/api/rides/{ride_id}/start"))\
            .to_be_visible()  # fmt: skip
        page.screenshot(path=str(ARTIFACTS / "7-api-docs.png"))
        assert errors == [] and failed == [] and outside == []


def test_ops_filters_cars_by_status(server: str) -> None:
    """An operator narrows the cars to those on their way to a pick-up, then to idle ones."""
    import httpx
    from playwright.sync_api import expect

    ride_id, me = book_over_http(server, "Lin", (0.2, 0.8), (0.8, 0.2))
    deadline = time.monotonic() + 20
    while (car_id := httpx.get(f"{server}/api/rides/{ride_id}", headers=me).json()["vehicle_id"]) \
            is None:  # fmt: skip
        assert time.monotonic() < deadline, "no car was assigned"
        time.sleep(0.1)
    with chromium() as browser:
        ops = browser.new_page(viewport={"width": 1200, "height": 800})
        errors: list[str] = []
        ops.on("pageerror", lambda exc: errors.append(str(exc)))
        ops.goto(f"{server}/ops")
        ops.get_by_label("Operator token").fill(OPERATOR)
        ops.get_by_role("button", name="Connect").click()
        cars = ops.locator("#cars tr:not(.empty)")
        expect(cars).to_have_count(3)
        show = ops.get_by_label("Show cars that are")
        # the car stays "to pick-up" while it drives to Lin and waits at the kerb
        show.select_option(label="on the way to a pick-up")
        expect(cars).to_have_count(1)
        expect(cars.first).to_contain_text(car_id)
        expect(cars.first).to_contain_text("to pick-up")
        expect(ops.locator("#car-count")).to_have_text("1 car on the way to a pick-up")
        ops.screenshot(path=str(ARTIFACTS / "8-ops-filter.png"))
        show.select_option(label="idle")
        expect(cars).to_have_count(2)
        expect(ops.locator("#cars")).not_to_contain_text(car_id)
        show.select_option(label="charging")
        expect(ops.locator("#cars tr.empty")).to_have_text("no car is charging now")
        show.select_option(label="any status")
        expect(cars).to_have_count(3)
        assert errors == []
    assert httpx.post(f"{server}/api/rides/{ride_id}/cancel", headers=me).status_code == 200
