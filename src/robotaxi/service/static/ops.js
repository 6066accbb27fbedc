// The operations view: every car on the map, open trips, KPIs, EV yields, the stored vehicle
// event log, support tickets.
"use strict";

(() => {
  const { api, operatorToken, saveOperatorToken, RoadMap } = Robotaxi;
  const $ = (id) => document.getElementById(id);
  const map = new RoadMap($("map"), { label: "City map with every robotaxi" });
  const COLORS = { to_pickup: "#1f6feb", at_pickup: "#1f6feb", to_dropoff: "#8250df", at_dropoff: "#8250df" };
  let timer = null;

  function rows(tbody, items, cells) {
    const body = $(tbody);
    body.innerHTML = "";
    for (const item of items) {
      const tr = document.createElement("tr");
      for (const value of cells(item)) {
        const td = document.createElement("td");
        if (value instanceof Node) td.append(value);
        else td.textContent = value === null || value === undefined ? "–" : String(value);
        tr.append(td);
      }
      body.append(tr);
    }
  }

  async function refresh() {
    const token = operatorToken();
    try {
      const [cars, trips, kpis, yields, vehicleEvents, tickets] = await Promise.all([
        api("/api/vehicles/state", { token }),
        api("/api/trips/open", { token }),
        api("/api/kpis", { token }),
        api("/api/yields", { token }),
        api("/api/vehicle-events?limit=20", { token }),
        api("/api/tickets", { token }),
      ]);
      $("login-panel").hidden = true;
      $("data").hidden = false;
      $("clock").textContent = `sim time ${Math.round(kpis.sim_time_s)} s · speed ${kpis.speed}× · real-time factor ${kpis.real_time_factor ?? "–"}`;
      map.set({
        markers: cars.map((c) => ({
          lat: c.lat,
          lon: c.lon,
          heading: c.heading_deg,
          shape: "car",
          radius: 6,
          color: c.yielding_for ? "#f0a500" : COLORS[c.status] || "#1a7f37",
        })),
      });
      const dl = $("kpis");
      dl.innerHTML = "";
      for (const [k, v] of Object.entries(kpis)) {
        if (typeof v === "object" && v !== null) continue;
        const dt = document.createElement("dt");
        dt.textContent = k.replace(/_/g, " ");
        const dd = document.createElement("dd");
        dd.textContent = v === null ? "–" : String(v);
        dl.append(dt, dd);
      }
      rows("trips", trips, (t) => [t.id, t.state, t.vehicle_id, t.rider, t.eta_s === null ? null : `${Math.round(t.eta_s)} s`]);
      rows("yields", yields.slice(-20).reverse(), (y) => [y.vehicle_id, y.ev_id, y.decided_by === "car" ? `${y.approach} (car's own: ${y.basis})` : y.approach, y.in_range_s, y.stopped_s, y.active ? "yielding now" : y.resumed_s]);
      rows("vehicle-events", vehicleEvents.slice().reverse(), (e) => [
        e.this_run ? `${Math.round(e.time_s)} s` : `${Math.round(e.time_s)} s (earlier run)`,
        e.vehicle_id, e.kind.replace(/^ev_/, "").replace(/_/g, " "), e.data.ev, e.data.trip,
      ]);
      rows("tickets", tickets.slice().reverse(), (t) => {
        let action = "";
        if (t.status === "open") {
          action = document.createElement("button");
          action.type = "button";
          action.textContent = "Close";
          action.setAttribute("aria-label", `Close ticket ${t.id}`);
          action.addEventListener("click", async () => {
            await api(`/api/tickets/${t.id}/close`, { method: "POST", token });
            refresh();
          });
        }
        return [t.id, t.text, t.ride_id, t.status, action];
      });
      rows("cars", cars, (c) => [c.vehicle_id, c.status.replace(/_/g, " "), `${(c.speed_mps * 3.6).toFixed(0)} km/h`, c.trip_id]);
    } catch (err) {
      if (err.status === 401 || err.status === 403) {
        saveOperatorToken(null);
        $("login-panel").hidden = false;
        $("data").hidden = true;
        $("login-error").textContent = err.message;
        clearInterval(timer);
        timer = null;
      }
    }
  }

  function connect() {
    refresh();
    if (!timer) timer = setInterval(refresh, 1000);
  }

  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    saveOperatorToken($("op-token").value.trim());
    $("login-error").textContent = "";
    connect();
  });
  $("refund-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const rideId = $("refund-ride").value.trim();
    try {
      const done = await api(`/api/rides/${encodeURIComponent(rideId)}/refund`, {
        method: "POST",
        token: operatorToken(),
        body: { cents: Number.parseInt($("refund-cents").value, 10), reason: $("refund-reason").value },
      });
      $("refund-result").textContent = `Ride ${done.ride_id}: fare ${done.fare.text}`;
    } catch (err) {
      $("refund-result").textContent = err.message;
    }
  });
  $("sign-out").addEventListener("click", () => {
    saveOperatorToken(null);
    location.reload();
  });
  map.load().then(() => {
    if (operatorToken()) connect();
  });
})();
