"""Accessibility of every page, audited by axe-core in the real browser, and booking by keyboard.

axe-core (Deque's engine, the one browser vendors' audits build on) ships inside the
`axe-playwright-python` wheel as `axe.min.js`: the test injects that file into each page,
so nothing is fetched at run time. Each page is audited in the states a person meets it in:
the rider app signed out, signed in, with a quote and mid-ride; the share page; the in-car
screen at the greeting and driving; the ops view signed out and signed in. No serious or
critical violation is allowed. The results go to test-artifacts/axe-<state>.json.

The ride itself is booked with the keyboard alone: Tab, the arrow keys, Enter and Space.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from test_service_browser import (  # noqa: F401 - server: a fixture (its own live city)
    ARTIFACTS,
    CHROMIUM,
    OPERATOR,
    chromium,
    server,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.sumo,  # the server fixture starts the live city
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"chromium is not installed at {CHROMIUM}"),
]
BLOCKING = ("serious", "critical")
AXE_JS = Path(__import__("axe_playwright_python").__file__).with_name("axe.min.js")


def audit(page: Any, state: str, audits: dict[str, Any]) -> list[str]:
    """Run axe-core on the page as it is now; keep its violations; say the blocking ones."""
    page.evaluate(AXE_JS.read_text(encoding="utf-8"))
    result = page.evaluate(
        "axe.run(document, {resultTypes: ['violations', 'incomplete'],"
        " runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa',"
        " 'wcag22aa', 'best-practice']}})"
    )
    violations = [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [{"target": n["target"], "html": n["html"][:200]} for n in v["nodes"]],
        }
        for v in result["violations"]
    ]
    # what axe could not decide (to review by hand; e.g. text over a gradient)
    review = [
        {
            "id": v["id"],
            "impact": v["impact"],
            "nodes": [[n["target"], [m["message"] for m in n["any"]]] for n in v["nodes"]],
        }
        for v in result["incomplete"]
    ]
    audits[state] = {
        "axe": result["testEngine"]["version"],
        "violations": violations,
        "needs_review": review,
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"axe-{state}.json").write_text(json.dumps(audits[state], indent=1))
    return [
        f"{state}: {v['id']} ({v['impact']}) {v['help']} at "
        + "; ".join(" ".join(n["target"]) for n in v["nodes"][:4])
        for v in violations
        if v["impact"] in BLOCKING
    ]


def tab_to(page: Any, selector: str, limit: int = 80) -> None:
    """Press Tab until the element matching `selector` has the focus (as a keyboard user)."""
    for _ in range(limit):
        if page.evaluate("(s) => document.activeElement?.matches(s) ?? false", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} cannot be reached with Tab")


def test_every_page_passes_axe_and_a_ride_books_by_keyboard(
    server: str,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    audits: dict[str, Any] = {}
    blocking: list[str] = []
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{server}/")
        expect(page.locator("#signin-panel")).to_be_visible()
        page.wait_for_load_state("networkidle")
        blocking += audit(page, "app-signed-out", audits)

        # sign in and book with the keyboard alone
        tab_to(page, "#name")
        page.keyboard.type("Grace")
        page.keyboard.press("Enter")
        expect(page.locator("#rider-name")).to_have_text("Grace")
        blocking += audit(page, "app-signed-in", audits)
        tab_to(page, "#map")
        for key in ["ArrowLeft"] * 8 + ["ArrowDown"] * 8:
            page.keyboard.press(key)
        page.keyboard.press("Enter")
        spots = page.locator("#pickup-spots button")
        expect(spots.first).to_contain_text(re.compile(r"\d+ min walk"))
        tab_to(page, "#pickup-spots button")
        page.keyboard.press("Enter")
        expect(spots.first).to_have_attribute("aria-pressed", "true")
        tab_to(page, "#map")
        for key in ["ArrowRight"] * 10 + ["ArrowUp"] * 6:
            page.keyboard.press(key)
        page.keyboard.press("Enter")
        expect(page.locator("#dropoff-text")).not_to_have_text("not set")
        tab_to(page, "#get-quote")
        page.keyboard.press("Enter")
        expect(page.locator("#quote-details")).to_contain_text("Pick-up in")
        blocking += audit(page, "app-quote", audits)
        page.set_viewport_size({"width": 390, "height": 844})  # a phone
        blocking += audit(page, "app-quote-phone", audits)
        page.set_viewport_size({"width": 1200, "height": 800})
        tab_to(page, "#book")
        page.keyboard.press("Space")
        status = page.locator("#ride-status")
        expect(status).to_have_attribute("data-state", re.compile(r"\w"))
        tab_to(page, "#share")
        page.keyboard.press("Enter")
        share_link = page.locator("#share-link")
        expect(share_link).to_be_visible()
        blocking += audit(page, "app-mid-ride", audits)

        follower = context.new_page()
        follower.on("pageerror", lambda exc: errors.append(str(exc)))
        follower.goto(share_link.get_attribute("href") or "")
        expect(follower.locator("#shared-status")).to_contain_text("Grace")
        blocking += audit(follower, "share", audits)

        deadline = time.monotonic() + 60
        while status.get_attribute("data-state") != "arrived":
            assert time.monotonic() < deadline, "the car never arrived"
            page.wait_for_timeout(200)
        tab_to(page, "#unlock")
        page.keyboard.press("Enter")
        expect(page.locator("#unlock")).to_be_disabled()
        blocking += audit(page, "app-car-waiting", audits)
        car_url = server + (page.locator("#car-link").get_attribute("href") or "")

        car = context.new_page()
        car.on("pageerror", lambda exc: errors.append(str(exc)))
        car.goto(car_url)
        expect(car.locator("#greeting")).to_have_text("Hey there, Grace!", timeout=10_000)
        blocking += audit(car, "car-greeting", audits)
        tab_to(car, "#board")
        car.keyboard.press("Enter")
        expect(car.locator("#seatbelt")).to_be_enabled()
        tab_to(car, "#seatbelt")
        car.keyboard.press("Space")
        expect(car.locator("#start")).to_be_enabled()
        tab_to(car, "#start")
        car.keyboard.press("Enter")
        expect(car.locator("#ride-status")).to_have_text(
            "On the way to your destination", timeout=10_000
        )
        blocking += audit(car, "car-driving", audits)
        blocking += audit(page, "app-driving", audits)
        tab_to(car, "#help")
        car.keyboard.press("Enter")
        tab_to(car, "#help-topics button[data-topic=comfort]")
        car.keyboard.press("Enter")
        expect(car.locator("#help-result")).to_contain_text("Support ticket")
        blocking += audit(car, "car-help", audits)

        expect(page.locator("#receipt")).to_be_visible(timeout=60_000)
        blocking += audit(page, "app-receipt", audits)

        ops = context.new_page()
        ops.on("pageerror", lambda exc: errors.append(str(exc)))
        ops.goto(f"{server}/ops")
        blocking += audit(ops, "ops-signed-out", audits)
        tab_to(ops, "#op-token")
        ops.keyboard.type(OPERATOR)
        ops.keyboard.press("Enter")
        expect(ops.locator("#cars tr")).to_have_count(3)
        expect(ops.locator("#tickets")).to_contain_text("too hot or too cold")
        blocking += audit(ops, "ops", audits)
        ops.set_viewport_size({"width": 390, "height": 844})
        blocking += audit(ops, "ops-phone", audits)
        assert errors == []
    summary = {state: len(a["violations"]) for state, a in audits.items()}
    (ARTIFACTS / "axe-summary.json").write_text(json.dumps(summary, indent=1))
    assert blocking == [], "\n".join(blocking)
