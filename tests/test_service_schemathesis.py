"""Schemathesis fuzzes every operation of the OpenAPI document against the app, in-process
on the live grid city, and every answer must conform: no server error, only declared
statuses, bodies and headers as documented, bad input refused, auth enforced, `Allow`
complete.

Deterministic and bounded: Hypothesis derandomised (a fixed seed), a few examples per
operation, no example database.

Serial: schemathesis gives every operation's case the same pytest node id, so a pytest-xdist
worker would run only the first (`make test` runs this file in its second, plain pass).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.types import ASGIApp

from robotaxi.service.app import create_app
from test_service_api import OPERATOR, settings_for

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.sumo,
    pytest.mark.serial,
]
EXAMPLES = 12  # per operation and phase: the whole file stays well under three minutes
# Schema-valid pick-ups and drop-offs are mostly outside the (non-rectangular) service area,
# which JSON Schema cannot express: a 422 that says where to tap is the right answer there.
SERVICE_AREA_CHECKED = {"POST /api/rides/quote", "POST /api/rides"}


# Names as the service accepts them (format "rider-name" in the document): visible
# characters, at least one that is not a space
RIDER_NAMES = st.text(
    st.characters(exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn")), min_size=1, max_size=40
).filter(lambda name: bool(name.split()))
schemathesis.openapi.format("rider-name", RIDER_NAMES)


class LateApp:
    """The ASGI app schemathesis calls, started by the module fixture (the simulation needs
    pytest's temporary folders, which do not exist when the test is collected)."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    # typed loosely: schemathesis and Starlette spell the ASGI types differently
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.app is None:
            raise RuntimeError("the app is started by the `rider` fixture of this module")
        await self.app(scope, receive, send)


APP = LateApp()
RIDER_TOKEN = [""]  # set by the `rider` fixture
SEEN: dict[str, set[int]] = {}  # operation -> the statuses it answered the fuzzer
# the document as served (it does not depend on settings: the app under test serves it too)
DOCUMENT = create_app(settings_for(Path("/nonexistent"), Path("/nonexistent"))).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.app = APP


@pytest.fixture(scope="module")
def rider(tmp_path_factory: pytest.TempPathFactory, map_cache: Path) -> Iterator[str]:
    """Starts the app on the grid city and signs a rider in: that rider's token."""
    tmp = tmp_path_factory.mktemp("fuzz")
    APP.app = create_app(settings_for(tmp, map_cache, signups_per_window=10))
    try:
        with asgi.get_client(APP) as client:
            assert client.get("/openapi.json").json() == DOCUMENT
            token: str = client.post("/api/riders", json={"name": "Fuzz"}).json()["token"]
        RIDER_TOKEN[:] = [token]
        yield token
    finally:
        asgi.shutdown_lifespans()  # closes SUMO before the next module starts its own
        APP.app = None


@schema.auth(refresh_interval=None, retry_on=[])
class Tokens:
    """The operator's token for operator-only operations (those that answer 403), the
    rider's for the rest; schemathesis leaves it out or spoils it to check auth."""

    def get(self, case: Any, ctx: Any) -> str:
        operator_only = "403" in case.operation.definition.raw["responses"]
        return OPERATOR if operator_only else RIDER_TOKEN[0]

    def set(self, case: Any, token: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms_to_the_document(case: Any, rider: str) -> None:
    excluded = [positive_data_acceptance] if case.operation.label in SERVICE_AREA_CHECKED else []
    answer = case.call_and_validate(excluded_checks=excluded)
    SEEN.setdefault(case.operation.label, set()).add(answer.status_code)


def test_fuzzing_got_past_the_door(rider: str) -> None:
    """Every operation was fuzzed, and with the tokens: not every answer was 401/403."""
    labels = {f"{m.upper()} {p}" for p, item in DOCUMENT["paths"].items() for m in item}
    assert set(SEEN) == labels
    stuck = sorted(label for label, codes in SEEN.items() if codes <= {401, 403})
    assert not stuck, f"only refused at the door: {stuck}"
    everything = set().union(*SEEN.values())
    assert {200, 201, 404, 422} <= everything, everything
