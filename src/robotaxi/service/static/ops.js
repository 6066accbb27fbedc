// The operations view: every car on the map, open trips, KPIs, EV yields, the stored vehicle
// event log, support tickets (reply and close), remote assistance (answer a car that asks).
"use strict";

(() => {
  const { api, operatorToken, saveOperatorToken, RoadMap, metresBetween } = Robotaxi;
  const $ = (id) => document.getElementById(id);
  const map = new RoadMap($("map"), { label: "City map with every robotaxi" });
  const COLORS = { to_pickup: "#1f6feb", at_pickup: "#1f6feb", to_dropoff: "#8250df", at_dropoff: "#8250df" };
  let timer = null;
  // the groups of /api/vehicles/state, as an operator reads them
  const GROUPS = {
    idle: "idle",
    to_pickup: "to pick-up",
    with_rider: "with rider",
    charging: "charging",
    pulled_over: "pulled over",
    needs_assistance: "asks for assistance",
  };

  function rows(tbody, items, cells, empty = "none right now") {
    const body = $(tbody);
    body.innerHTML = "";
    if (!items.length) {
      // an empty table still says so (and a screen reader's table has a cell to read)
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = document.createElement("td");
      td.colSpan = body.closest("table").querySelectorAll("thead th").length;
      td.textContent = empty;
      tr.append(td);
      body.append(tr);
      return;
    }
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

  // --- KPIs in words, with units ----------------------------------------------------------
  // key → [label, unit]; units: "s" (a duration), "pct", "share" (0–1 as %), "m", "km",
  // "ms", "x" (a speed factor), "" (a count or a number)
  const KPI_NAMES = {
    sim_time_s: ["Time since the service started", "s"],
    requests: ["Rides requested", ""],
    requests_from_app: ["Rides requested in the app", ""],
    served: ["Rides served", ""],
    served_pct: ["Served", "pct"],
    completed: ["Rides completed", ""],
    cancelled: ["Rides cancelled", ""],
    cancelled_pct: ["Cancelled", "pct"],
    interrupted: ["Rides interrupted", ""],
    unfinished: ["Rides not finished yet", ""],
    open: ["Rides open now", ""],
    wait_mean_s: ["Pick-up wait, mean", "s"],
    wait_p50_s: ["Pick-up wait, median", "s"],
    wait_p95_s: ["Pick-up wait, 95th percentile", "s"],
    in_vehicle_p50_s: ["Time in the car, median", "s"],
    in_vehicle_mean_s: ["Time in the car, mean", "s"],
    walk_mean_m: ["Walk to and from the car, mean", "m"],
    detour_ratio_mean: ["Detour over the shortest route, mean", "ratio"],
    pickup_eta_error_p50_s: ["Pick-up ETA error, median (late +)", "s"],
    pickup_eta_error_abs_p95_s: ["Pick-up ETA error size, 95th percentile", "s"],
    km_total: ["Distance driven", "km"],
    deadhead_km_share: ["Distance driven empty", "share"],
    utilisation: ["Cars busy with rides (time)", "share"],
    occupied_time_share: ["Cars with a rider (time)", "share"],
    ev_yields: ["Pull-overs for ambulances", ""],
    ev_yields_resumed: ["Pull-overs ended", ""],
    ev_yield_reaction_mean_s: ["Pull-over reaction, mean", "s"],
    ev_yield_stopped_mean_s: ["Time stopped for an ambulance, mean", "s"],
    fleet: ["Cars in the fleet", ""],
    busy_vehicles: ["Cars with a ride now", ""],
    speed: ["Clock speed asked", "x"],
    real_time_factor: ["Clock speed kept", "x"],
    behind_s: ["Behind the clock", "s"],
    falling_behind: ["Falling behind", "note"],
    tick_ms_mean: ["Simulation step, mean", "ms"],
    tick_ms_max: ["Simulation step, longest", "ms"],
  };

  function coarse(s) {
    if (Math.abs(s) < 90) return `${Math.round(s)} s`;
    const m = Math.round(s / 60);
    return m < 90 ? `${m} min` : `${Math.floor(m / 60)} h ${m % 60} min`;
  }

  function kpiText(key, v) {
    const [label, unit] = KPI_NAMES[key] || [key.replace(/_/g, " "), ""];
    if (unit === "note") return [label, v || "no"];
    if (v === null || v === undefined) return [label, "–"];
    if (typeof v !== "number") return [label, String(v)];
    const text = {
      s: () => coarse(v),
      pct: () => `${v.toFixed(1)} %`,
      share: () => `${(100 * v).toFixed(1)} %`,
      m: () => `${Math.round(v)} m`,
      km: () => `${v.toFixed(1)} km`,
      ms: () => `${v.toFixed(1)} ms`,
      x: () => `${v}×`,
      ratio: () => v.toFixed(2),
    }[unit];
    return [label, text ? text() : String(v)];
  }

  // --- small charts of the KPIs over time (SVG, no library) -------------------------------
  const SVG = "http://www.w3.org/2000/svg";

  function chart(title, samples, series, format) {
    const w = 300, h = 90, pad = 4;
    const fig = document.createElement("figure");
    fig.className = "chart";
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("role", "img");
    const t0 = samples.length ? samples[0].time_s : 0;
    const t1 = samples.length ? samples[samples.length - 1].time_s : 1;
    const values = series.flatMap((s) => samples.map(s.value)).filter((v) => v !== null);
    const top = Math.max(1, ...values);
    const latest = [];
    for (const s of series) {
      const pts = samples
        .map((k) => [k.time_s, s.value(k)])
        .filter(([, v]) => v !== null)
        .map(([t, v]) => `${(pad + ((t - t0) / Math.max(t1 - t0, 1)) * (w - 2 * pad)).toFixed(1)},${(h - pad - (v / top) * (h - 2 * pad)).toFixed(1)}`);
      if (pts.length === 1) {  // a single sample: a dot
        const [cx, cy] = pts[0].split(",");
        const dot = document.createElementNS(SVG, "circle");
        dot.setAttribute("cx", cx);
        dot.setAttribute("cy", cy);
        dot.setAttribute("r", "3");
        dot.setAttribute("fill", s.color);
        svg.append(dot);
      } else if (pts.length) {
        const line = document.createElementNS(SVG, "polyline");
        line.setAttribute("points", pts.join(" "));
        line.setAttribute("fill", "none");
        line.setAttribute("stroke", s.color);
        line.setAttribute("stroke-width", "2");
        svg.append(line);
      }
      const last = samples.length ? s.value(samples[samples.length - 1]) : null;
      latest.push(`${s.name} ${last === null ? "–" : format(last)}`);
    }
    const summary = `${title}, over ${coarse(t1 - t0)}: now ${latest.join(", ")}; highest ${format(top)}`;
    svg.setAttribute("aria-label", summary);
    const cap = document.createElement("figcaption");
    const head = document.createElement("strong");
    head.textContent = title;
    cap.append(head);
    for (const [i, s] of series.entries()) {
      const key = document.createElement("span");
      key.className = "chart-key";
      key.style.borderColor = s.color;
      key.textContent = latest[i];
      cap.append(" ", key);
    }
    fig.append(svg, cap);
    return fig;
  }

  function drawCharts(samples) {
    const box = $("charts");
    box.innerHTML = "";
    if (!samples.length) {
      box.textContent = "No samples yet: the first comes after a simulated minute.";
      return;
    }
    const count = (v) => String(Math.round(v));
    box.append(
      chart("Rides so far", samples, [
        { name: "requested", color: "#1f6feb", value: (k) => k.requests },
        { name: "completed", color: "#1a7f37", value: (k) => k.completed },
        { name: "cancelled", color: "#cf222e", value: (k) => k.cancelled },
      ], count),
      chart("Riders waiting for their car", samples, [
        { name: "waiting", color: "#8250df", value: (k) => k.waiting },
      ], count),
      chart("Pick-up wait, median of the minute", samples, [
        { name: "wait", color: "#9a6700", value: (k) => k.wait_p50_s },
      ], coarse),
      chart("Cars by what they are doing", samples, [
        { name: "idle", color: "#1a7f37", value: (k) => k.cars.idle },
        { name: "to a pick-up", color: "#1f6feb", value: (k) => k.cars.to_pickup },
        { name: "with a rider", color: "#8250df", value: (k) => k.cars.with_rider },
        { name: "charging", color: "#57606a", value: (k) => k.cars.charging },
      ], count),
    );
  }

  // Cars on the map, each labelled with its id; cars standing within CLUSTER_M of each other
  // (a depot, a kerb where several wait) are one marker labelled with how many and which.
  const CLUSTER_M = 15;
  const LABEL_AT_MOST = 60; // more markers than this: only the clusters keep a label

  function carMarkers(cars) {
    const groups = [];
    for (const c of cars) {
      const near = groups.find((g) => metresBetween(g[0], c) < CLUSTER_M);
      if (near) near.push(c);
      else groups.push([c]);
    }
    const named = groups.length <= LABEL_AT_MOST;
    return groups.map((g) => {
      const c = g[0];
      const color = c.yielding_for ? "#f0a500" : COLORS[c.status] || "#1a7f37";
      if (g.length === 1) {
        const label = named ? c.vehicle_id : undefined;
        return { lat: c.lat, lon: c.lon, heading: c.heading_deg, shape: "car", radius: 6, color, label };
      }
      const ids = g.map((x) => x.vehicle_id);
      const which = named ? `: ${ids.slice(0, 3).join(", ")}${ids.length > 3 ? ", …" : ""}` : "";
      return { lat: c.lat, lon: c.lon, radius: 9, color: "#57606a", label: `${g.length} cars${which}` };
    });
  }

  // What a car that asks for help has around it: itself (a triangle, heading up the page as
  // on the map: north up), the road users near it (dots; standing ones hollow) and the first
  // stretch of its route, within SURROUND_M — drawn from its screen's data.
  const SURROUND_M = 40;

  function surroundings(vehicleId, token) {
    const size = 120, half = size / 2, scale = half / SURROUND_M;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${size} ${size}`);
    svg.setAttribute("width", String(size));
    svg.setAttribute("height", String(size));
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", `around car ${vehicleId}: loading`);
    svg.classList.add("surroundings");
    api(`/api/vehicles/${encodeURIComponent(vehicleId)}/screen`, { token }).then((screen) => {
      const me = screen.position;
      const k = Math.PI / 180;
      const at = (p) => [
        half + (p.lon - me.lon) * k * Math.cos(me.lat * k) * 6371000 * scale,
        half - (p.lat - me.lat) * k * 6371000 * scale,
      ];
      const route = screen.route.map(([lat, lon]) => at({ lat, lon })).filter(([x, y]) => x >= 0 && x <= size && y >= 0 && y <= size);
      if (route.length > 1) {
        const line = document.createElementNS(SVG, "polyline");
        line.setAttribute("points", route.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "));
        line.setAttribute("fill", "none");
        line.setAttribute("stroke", "#1f6feb");
        line.setAttribute("stroke-width", "3");
        svg.append(line);
      }
      const near = screen.nearby.filter((n) => n.distance_m <= SURROUND_M);
      for (const n of near) {
        const [x, y] = at(n);
        const dot = document.createElementNS(SVG, "circle");
        dot.setAttribute("cx", x.toFixed(1));
        dot.setAttribute("cy", y.toFixed(1));
        dot.setAttribute("r", n.kind === "pedestrian" ? "2.5" : "4");
        const standing = n.speed_mps < 0.5;
        dot.setAttribute("fill", standing ? "#fff" : "#57606a");
        dot.setAttribute("stroke", "#24292f");
        svg.append(dot);
      }
      const a = (me.heading_deg * Math.PI) / 180;
      const tip = [half + Math.sin(a) * 7, half - Math.cos(a) * 7];
      const left = [half + Math.sin(a + 2.5) * 6, half - Math.cos(a + 2.5) * 6];
      const right = [half + Math.sin(a - 2.5) * 6, half - Math.cos(a - 2.5) * 6];
      const car = document.createElementNS(SVG, "polygon");
      car.setAttribute("points", [tip, left, right].map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "));
      car.setAttribute("fill", "#d1242f");
      svg.append(car);
      const standing = near.filter((n) => n.speed_mps < 0.5).length;
      svg.setAttribute(
        "aria-label",
        `around car ${vehicleId} (${SURROUND_M} m, north up): ${near.length} road users, ${standing} of them standing; its route in blue`,
      );
    }).catch(() => svg.setAttribute("aria-label", `around car ${vehicleId}: not available`));
    return svg;
  }

  async function refresh() {
    const token = operatorToken();
    const filter = $("car-filter").value;
    try {
      const [cars, trips, kpis, yields, vehicleEvents, tickets, assistance, history] = await Promise.all([
        api(`/api/vehicles/state${filter ? `?status=${encodeURIComponent(filter)}` : ""}`, { token }),
        api("/api/trips/open", { token }),
        api("/api/kpis", { token }),
        api("/api/yields", { token }),
        api("/api/vehicle-events?limit=20", { token }),
        api("/api/tickets?limit=100", { token }),
        api("/api/assistance", { token }),
        api("/api/kpis/history", { token }),
      ]);
      $("login-panel").hidden = true;
      $("data").hidden = false;
      $("behind-banner").hidden = !kpis.falling_behind;
      $("behind-banner").textContent = kpis.falling_behind ? `Falling behind: ${kpis.falling_behind}` : "";
      $("clock").textContent = `sim time ${coarse(kpis.sim_time_s)} · clock ${kpis.speed}× asked, ${kpis.real_time_factor ?? "–"}× kept`;
      const markers = carMarkers(cars);
      window.__opsMarkers = markers; // what the map draws, for tests
      map.set({ markers });
      const dl = $("kpis");
      dl.innerHTML = "";
      for (const [k, v] of Object.entries(kpis)) {
        if (typeof v === "object" && v !== null) continue;
        const [label, value] = kpiText(k, v);
        const dt = document.createElement("dt");
        dt.textContent = label;
        dt.title = k;
        const dd = document.createElement("dd");
        dd.textContent = value;
        dl.append(dt, dd);
      }
      drawCharts(history);
      const ANSWERS = [["another_way", "Blocked: take another way"], ["wait", "Wait: it will clear"], ["pull_over", "Pull over at the next kerb"], ["pass_opposite", "Pass using the opposite lane when clear"], ["lane_closed", "Lane closed ahead: use another lane"]];
      rows("assistance", assistance, (r) => {
        const buttons = document.createElement("span");
        for (const [answer, label] of r.open ? ANSWERS : []) {
          const b = document.createElement("button");
          b.type = "button";
          b.textContent = label;
          b.setAttribute("aria-label", `${label} (car ${r.vehicle_id})`);
          b.addEventListener("click", async () => {
            try {
              await api(`/api/assistance/${encodeURIComponent(r.id)}/answer`, { method: "POST", token, body: { answer } });
              $("assist-result").textContent = `Sent to ${r.vehicle_id}: ${label.toLowerCase()}.`;
            } catch (err) {
              $("assist-result").textContent = err.message;
            }
            refresh();
          });
          buttons.append(b);
        }
        const log = document.createElement("ul");
        log.className = "plain";
        for (const a of r.answers) {
          const li = document.createElement("li");
          li.textContent = `${a.answer.replace(/_/g, " ")}: ${a.outcome || "checking"}${a.reason ? ` (${a.reason})` : ""}`;
          log.append(li);
        }
        const resolved = r.resolution_s === null ? "" : `, resolved in ${Math.round(r.resolution_s)} s`;
        const standing = `${Math.round(r.standing_s)} s${r.open ? "" : ` · closed: ${r.closed_how}${resolved}`}`;
        const around = r.open ? surroundings(r.vehicle_id, token) : "–";
        return [r.vehicle_id, r.trip_id, r.street, standing, r.sees, around, log, r.open ? buttons : "closed"];
      });
      rows("trips", trips, (t) => [t.id, t.state, t.vehicle_id, t.rider, t.eta_s === null ? null : `${Math.round(t.eta_s)} s`]);
      rows("yields", yields.slice(-20).reverse(), (y) => [y.vehicle_id, y.ev_id, y.decided_by === "car" ? `${y.approach} (car's own: ${y.basis})` : y.approach, y.in_range_s, y.stopped_s, y.active ? "yielding now" : y.resumed_s]);
      rows("vehicle-events", vehicleEvents.slice().reverse(), (e) => [
        e.this_run ? `${Math.round(e.time_s)} s` : `${Math.round(e.time_s)} s (earlier run)`,
        e.vehicle_id, e.kind.replace(/^ev_/, "").replace(/_/g, " "), e.data.ev, e.data.trip,
      ]);
      // waiting for support first (open; a rider who feels unsafe before all), then
      // answered, then closed; newest first in each
      const ORDER = { open: 0, answered: 1, closed: 2 };
      const rank = (t) => ORDER[t.status] * 2 + (t.status === "open" && t.topic === "safety" ? 0 : 1);
      const queue = tickets.slice().reverse().sort((a, b) => rank(a) - rank(b));
      rows("tickets", queue, (t) => {
        const actions = document.createElement("span");
        if (t.status !== "closed") {
          const reply = document.createElement("button");
          reply.type = "button";
          reply.textContent = "Reply";
          reply.setAttribute("aria-label", `Reply to ticket ${t.id}`);
          reply.addEventListener("click", () => {
            $("reply-ticket").value = String(t.id);
            $("reply-text").focus();
          });
          const close = document.createElement("button");
          close.type = "button";
          close.textContent = "Close";
          close.setAttribute("aria-label", `Close ticket ${t.id}`);
          close.addEventListener("click", async () => {
            await api(`/api/tickets/${t.id}/close`, { method: "POST", token });
            refresh();
          });
          actions.append(reply, close);
        }
        const log = document.createElement("ul");
        log.className = "plain";
        const entries = [{ author: "rider", text: t.text }, ...t.messages];
        for (const m of entries) {
          const li = document.createElement("li");
          li.textContent = m.text === null
            ? `${m.author === "operator" ? "closed by support" : "closed by the rider"}`
            : `${m.author === "operator" ? "support" : "rider"}: ${m.text}`;
          log.append(li);
        }
        const where = [t.ride_id ? `ride ${t.ride_id}` : null, t.vehicle_id ? `car ${t.vehicle_id}` : null]
          .filter(Boolean).join(" · ");
        return [t.id, t.rider_name || t.rider_id, where || null, t.topic ? t.topic.replace(/_/g, " ") : null, t.status, log, actions];
      });
      if (filter !== $("car-filter").value) return; // the filter changed meanwhile: a newer refresh follows
      const shown = filter ? $("car-filter").selectedOptions[0].textContent : "";
      const count = `${cars.length} ${cars.length === 1 ? "car" : "cars"}${shown ? ` ${shown}` : ""}`;
      if ($("car-count").textContent !== count) $("car-count").textContent = count;
      rows("cars", cars, (c) => [
        c.vehicle_id,
        c.groups.map((g) => GROUPS[g] || g).join(" · "),
        `${(c.speed_mps * 3.6).toFixed(0)} km/h`,
        c.trip_id,
      ], filter ? `no car is ${$("car-filter").selectedOptions[0].textContent} now` : "no cars");
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
  $("car-filter").addEventListener("change", () => {
    if (operatorToken()) refresh();
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
  $("reply-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const ticketId = Number.parseInt($("reply-ticket").value, 10);
    try {
      const done = await api(`/api/tickets/${ticketId}/messages`, {
        method: "POST",
        token: operatorToken(),
        body: { text: $("reply-text").value },
      });
      $("reply-result").textContent = `Reply sent: ticket ${done.id} is ${done.status}.`;
      $("reply-text").value = "";
      refresh();
    } catch (err) {
      $("reply-result").textContent = err.message;
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
