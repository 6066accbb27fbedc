"""Kill `robotaxi serve` mid-ride (SIGKILL) and start it again on the same database.

Every ride booked before the kill is still there; rides in flight are closed with a recorded
reason; the events logged before the kill are still the first events of each ride; nothing
is duplicated; riders keep their tokens and can book again.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from robotaxi.cli.main import main
from robotaxi.fleet.trips import fold_state
from robotaxi.store.store import Store

REPO = Path(__file__).resolve().parents[1]
OPERATOR = "restart-test-operator"
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / f"serve-{self.port}.log"
        cmd = [
            sys.executable, "-m", "robotaxi.cli.main", "serve",
            "--fleet", "3", "--speed", "50", "--hours", "1", "--port", str(self.port),
            "--data-dir", str(data_dir), "--operator-token", OPERATOR,
            "--riders-per-hour", "30", "--no-background", "--ev-per-hour", "0",
            "--log-level", "warning",
        ]  # fmt: skip
        env = dict(os.environ)
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.proc.kill()
        raise AssertionError(f"serve did not come up:\n{self.log.read_text()}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


def wait_for(
    url: str, headers: dict[str, str], want: set[str], timeout_s: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ride: dict[str, Any] = httpx.get(url, headers=headers, timeout=5).json()
        if ride["state"] in want:
            return ride
        time.sleep(0.1)
    raise AssertionError(f"{url} never reached {want}: {ride['state']}")


@pytest.mark.sumo
def test_kill_and_restart_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "serve"
    data_dir.mkdir()
    first = Server(data_dir)
    try:
        bounds = httpx.get(f"{first.url}/api/map").json()["bounds"]

        def at(fx: float, fy: float) -> dict[str, float]:
            return {
                "lat": bounds["south"] + fy * (bounds["north"] - bounds["south"]),
                "lon": bounds["west"] + fx * (bounds["east"] - bounds["west"]),
            }

        riders: dict[str, dict[str, str]] = {}
        rides: dict[str, str] = {}
        for name, a, b in [
            ("Rita", (0.2, 0.2), (0.85, 0.8)),  # will be riding when the server dies
            ("Wes", (0.7, 0.3), (0.2, 0.9)),  # still waiting for the car
            ("Cal", (0.5, 0.5), (0.1, 0.1)),  # cancelled before the kill
        ]:
            token = httpx.post(f"{first.url}/api/riders", json={"name": name}).json()["token"]
            riders[name] = {"Authorization": f"Bearer {token}"}
            r = httpx.post(
                f"{first.url}/api/rides",
                json={"pickup": at(*a), "dropoff": at(*b)},
                headers=riders[name],
            )
            assert r.status_code == 201, r.text
            rides[name] = r.json()["id"]
        me = riders["Rita"]
        rita = f"{first.url}/api/rides/{rides['Rita']}"
        httpx.post(f"{first.url}/api/rides/{rides['Cal']}/cancel", headers=riders["Cal"])
        wait_for(rita, me, {"arrived"})
        assert httpx.post(f"{rita}/unlock", headers=me).status_code == 200
        assert httpx.post(f"{rita}/board", headers=me).status_code == 200
        httpx.post(f"{rita}/buckle", json={"buckled": True}, headers=me)
        assert httpx.post(f"{rita}/start", headers=me).json()["state"] == "driving"
        before = {
            name: httpx.get(f"{first.url}/api/rides/{rid}", headers=riders[name]).json()
            for name, rid in rides.items()
        }
        assert before["Rita"]["state"] == "driving"
        assert before["Wes"]["state"] in {"requested", "assigned", "en_route", "arrived"}
        assert before["Cal"]["state"] == "cancelled"
    finally:
        first.kill()

    url = f"sqlite:///{(data_dir / 'robotaxi.sqlite').resolve()}"
    with Store.open(url) as store:
        logged_before = {rid: store.events(rid) for rid in store_ride_ids(store)}
        open_before = {r.id for r in store.open_rides()}
    assert rides["Rita"] in open_before and rides["Wes"] in open_before
    assert any(rid.startswith("sim") for rid in logged_before)  # synthetic riders logged too

    second = Server(data_dir)
    try:
        for name, rid in rides.items():
            r = httpx.get(f"{second.url}/api/rides/{rid}", headers=riders[name])
            assert r.status_code == 200, r.text  # the rider's token still works
        rita_after = httpx.get(f"{second.url}/api/rides/{rides['Rita']}", headers=me).json()
        assert rita_after["state"] == "interrupted" and rita_after["live"] is False
        assert rita_after["close_reason"].startswith("service restarted")
        assert "while the ride was driving" in rita_after["close_reason"]
        assert [e["state"] for e in rita_after["events"]][-2:] == ["driving", "interrupted"]
        wes = httpx.get(f"{second.url}/api/rides/{rides['Wes']}", headers=riders["Wes"]).json()
        assert wes["state"] == "cancelled" and wes["close_reason"].startswith("service restarted")
        cal = httpx.get(f"{second.url}/api/rides/{rides['Cal']}", headers=riders["Cal"]).json()
        assert cal["state"] == "cancelled" and cal["close_reason"] is None
        assert cal["events"][-1]["cause"] == "rider"
        # a closed ride cannot be acted on, and its rider may book again at once
        late = httpx.post(f"{second.url}/api/rides/{rides['Wes']}/cancel", headers=riders["Wes"])
        assert late.status_code == 409
        again = httpx.post(
            f"{second.url}/api/rides",
            json={"pickup": at(0.3, 0.3), "dropoff": at(0.6, 0.6)},
            headers=me,
        )
        assert again.status_code == 201
        receipt = httpx.get(f"{second.url}/api/rides/{rides['Rita']}/receipt", headers=me).json()
        assert receipt["ended"] and receipt["close_reason"] == rita_after["close_reason"]
        assert receipt["route_kind"] == "planned" and len(receipt["route"]) >= 2
    finally:
        assert second.stop() == 0

    with Store.open(url) as store:
        after_ids = store_ride_ids(store)
        assert set(logged_before) <= after_ids  # nothing lost
        for rid, events in logged_before.items():
            now = store.events(rid)
            assert now[: len(events)] == events  # the log before the kill is untouched
            assert [e.seq for e in now] == list(range(len(now)))  # nothing duplicated
            state = fold_state(now)  # every step was a legal transition
            if rid in open_before:
                assert state is not None and state.terminal
                ride = store.ride(rid)
                assert ride is not None and ride.state == state and ride.close_reason
                assert len(now) > len(events)
            else:
                assert len(now) == len(events)
        # what is open now belongs to the second run (a clean stop closes nothing: the next
        # start does)
        assert all(r.id not in logged_before for r in store.open_rides())
        assert len(store.runs()) == 2


def store_ride_ids(store: Store) -> set[str]:
    from sqlalchemy import text

    with store.engine.connect() as conn:
        return {row[0] for row in conn.execute(text("SELECT id FROM rides"))}


def test_serve_rejects_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["serve", "--speed", "0", "--data-dir", str(tmp_path / "never")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "--speed" in err and "greater than 0" in err
    assert not (tmp_path / "never").exists()  # refused before touching anything


@pytest.mark.parametrize(
    ("tariff", "says"),
    [
        ("base_cents=-1", "must not be negative"),
        ("currency=XYZ", "unknown currency code 'XYZ'"),
        ("flag_drop=400", "is not KEY=VALUE"),
        ("base_cents", "is not KEY=VALUE"),
    ],
)
def test_serve_rejects_a_tariff_that_cannot_work(
    tariff: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve", "--tariff", tariff, "--data-dir", str(tmp_path / "never")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "--tariff" in err and says in err
    assert not (tmp_path / "never").exists()


def test_serve_takes_a_tariff(tmp_path: Path) -> None:
    import argparse

    from robotaxi.cli.main import build_parser
    from robotaxi.cli.serve import settings_from_args

    args = build_parser().parse_args(
        ["serve", "--tariff", "base_cents=415, per_mile_cents=300,currency=EUR",
         "--fare-slow-factor", "2", "--data-dir", str(tmp_path)]
    )  # fmt: skip
    assert isinstance(args, argparse.Namespace)
    settings = settings_from_args(args)
    assert settings.tariff.base_cents == 415 and settings.tariff.per_mile_cents == 300
    assert settings.tariff.currency == "EUR" and settings.tariff.per_minute_cents == 55
    assert settings.fare_slow_factor == 2.0
