// The rider app: sign in, tap pick-up and destination, quote, book, follow the car, receipt.
"use strict";

(() => {
  const { api, stream, rider, saveRider, duration, distance, STATE_TEXT, RoadMap, carMarker, metresBetween } = Robotaxi;
  const $ = (id) => document.getElementById(id);
  const SIGNAL_SHOWN_S = 10; // "honking and flashing" shows this long (simulated s)
  const state = { riderAt: null, pickup: null, dropoff: null, quoteRoute: [], ride: null, abort: null };
  const map = new RoadMap($("map"), {
    label: "City map: tap to set the pick-up or the destination",
    onPick: pick,
  });

  function token() {
    const r = rider();
    return r ? r.token : "";
  }

  function show(id, visible) {
    $(id).hidden = !visible;
  }

  // the API takes a position only (a searched place also carries its name)
  function point(p) {
    return { lat: p.lat, lon: p.lon };
  }

  function fmt(p) {
    if (!p) return "not set";
    return p.name || `${p.lat.toFixed(5)}, ${p.lon.toFixed(5)}`;
  }

  // --- places: search as you type, and names for tapped points -------------------------
  let searchSeq = 0;
  let searchTimer = null;

  async function searchPlaces() {
    const q = $("place-search").value.trim();
    const seq = ++searchSeq;
    const list = $("place-results");
    if (!q) {
      list.innerHTML = "";
      return;
    }
    let found;
    try {
      found = await api(`/api/places?q=${encodeURIComponent(q)}&limit=6`);
    } catch (err) {
      if (seq === searchSeq) list.textContent = err.message;
      return;
    }
    if (seq !== searchSeq) return; // a newer query is on its way
    list.innerHTML = "";
    if (!found.length) {
      const li = document.createElement("li");
      li.textContent = "No street or place of this city matches";
      list.append(li);
      return;
    }
    for (const place of found) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "place-result";
      b.textContent = place.name;
      b.dataset.kind = place.kind;
      b.setAttribute("aria-label", `${place.name} (${place.kind})`);
      b.addEventListener("click", () => {
        list.innerHTML = "";
        $("place-search").value = "";
        pick({ lat: place.lat, lon: place.lon, name: place.name });
      });
      li.append(b);
      list.append(li);
    }
  }

  async function nameOf(where) {
    try {
      const n = await api(`/api/places/reverse?lat=${where.lat}&lon=${where.lon}`);
      return n.name;
    } catch (err) {
      return null;
    }
  }

  function redraw() {
    const markers = [];
    const routes = [];
    const ride = state.ride;
    const pickup = ride && ride.pickup_curb ? ride.pickup_curb : state.pickup;
    const dropoff = ride && ride.dropoff_curb ? ride.dropoff_curb : state.dropoff;
    if (state.quoteRoute.length) routes.push({ line: state.quoteRoute, color: "#1f6feb" });
    if (ride && ride.car_route) routes.push({ line: ride.car_route, color: "#d1242f" });
    const walking = state.riderAt && pickup && !(ride && ride.on_board) && !(ride && ["completed", "cancelled", "interrupted"].includes(ride.state));
    if (walking && metresBetween(state.riderAt, pickup) > 5) {
      // the way along the streets when this spot came with one from here, else a straight line
      const street = pickup.walk && pickup.walkFrom && metresBetween(pickup.walkFrom, state.riderAt) < 1;
      const line = street ? pickup.walk : [[state.riderAt.lat, state.riderAt.lon], [pickup.lat, pickup.lon]];
      routes.push({ line, color: "#6e7781" });
      markers.push({ ...state.riderAt, color: "#6e7781", radius: 4, label: "you" });
    }
    if (pickup) markers.push({ ...pickup, color: "#1a7f37", label: "pick-up" });
    if (dropoff) markers.push({ ...dropoff, color: "#8250df", label: "destination" });
    if (ride && ride.vehicle) {
      markers.push(carMarker(ride.vehicle, ride.vehicle_id));
    }
    map.set({ routes, markers });
  }

  // --- pick-up spots: the kerb spots near the rider where a car may stop ---------------------
  let spotsSeq = 0;
  let spotsFor = null; // where the spots shown were looked up for
  // while the rider chooses, each spot's "car there in …" follows the fleet as it moves
  const SPOTS_REFRESH_MS = 30000;
  setInterval(() => {
    const riding = state.ride && !["completed", "cancelled", "interrupted"].includes(state.ride.state);
    if (spotsFor && !$("spots-panel").hidden && !riding) loadSpots(spotsFor);
  }, SPOTS_REFRESH_MS);

  // when the car that would come to a spot could be there, as a rider reads it
  function carComing(etaS) {
    if (etaS === null || etaS === undefined) return "no free car right now";
    return etaS < 60 ? "car there in under a minute" : `car there in ${Math.round(etaS / 60)} min`;
  }

  async function loadSpots(where) {
    const seq = ++spotsSeq;
    spotsFor = where;
    const list = $("pickup-spots");
    let spots = [];
    try {
      spots = await api(`/api/places/pickup-spots?lat=${where.lat}&lon=${where.lon}&limit=4`);
    } catch (err) {
      spots = [];
    }
    if (seq !== spotsSeq) return;
    list.innerHTML = "";
    show("spots-panel", spots.length > 0);
    for (const spot of spots) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "place-result";
      const mins = Math.max(1, Math.round(spot.walk_s / 60));
      b.textContent = `${spot.name || "Kerb spot"} · ${mins} min walk (${Math.round(spot.walk_m)} m) · ${carComing(spot.car_eta_s)}`;
      // refreshed: the spot the rider chose stays chosen
      const chosen = state.pickup && state.pickup.lat === spot.lat && state.pickup.lon === spot.lon;
      b.setAttribute("aria-pressed", chosen ? "true" : "false");
      b.addEventListener("click", () => {
        state.pickup = { lat: spot.lat, lon: spot.lon, name: spot.name, walk: spot.walk_path, walkFrom: where };
        for (const other of list.querySelectorAll("button")) other.setAttribute("aria-pressed", "false");
        b.setAttribute("aria-pressed", "true");
        state.quoteRoute = [];
        $("quote").textContent = "";
        $("pickup-text").textContent = fmt(state.pickup);
        redraw();
      });
      li.append(b);
      list.append(li);
    }
  }

  function pick(where) {
    if (state.ride && !["completed", "cancelled", "interrupted"].includes(state.ride.state)) return;
    const which = document.querySelector('input[name="pick"]:checked').value;
    state[which] = where;
    if (which === "pickup") {
      state.riderAt = where;
      loadSpots(where);
    }
    if (!where.name) {
      nameOf(where).then((name) => {
        if (name && state[which] === where) {
          where.name = name;
          $(`${which}-text`).textContent = fmt(where);
        }
      });
    }
    state.quoteRoute = [];
    $("quote").textContent = "";
    if (which === "pickup") document.querySelector('input[name="pick"][value="dropoff"]').checked = true;
    $("pickup-text").textContent = fmt(state.pickup);
    $("dropoff-text").textContent = fmt(state.dropoff);
    const ready = Boolean(state.pickup && state.dropoff);
    $("get-quote").disabled = !ready;
    $("book").disabled = !ready;
    redraw();
  }

  async function signIn(event) {
    event.preventDefault();
    $("signin-error").textContent = "";
    try {
      const me = await api("/api/riders", { method: "POST", body: { name: $("name").value } });
      saveRider(me);
      await enter();
    } catch (err) {
      $("signin-error").textContent = err.message;
    }
  }

  async function enter() {
    const me = rider();
    show("signin-panel", !me);
    show("rider-panel", Boolean(me));
    show("booking-panel", Boolean(me));
    show("history-panel", Boolean(me));
    if (!me) return;
    $("rider-name").textContent = me.name;
    let rides;
    try {
      rides = await loadHistory();
    } catch (err) {
      if (err.status === 401) {
        saveRider(null); // this server does not know the token: sign in again
        return enter();
      }
      throw err;
    }
    const active = rides.find((r) => !["completed", "cancelled", "interrupted"].includes(r.state));
    if (active) follow(active);
  }

  async function quote() {
    $("booking-error").textContent = "";
    try {
      const q = await api("/api/rides/quote", {
        method: "POST",
        token: token(),
        body: { pickup: point(state.pickup), dropoff: point(state.dropoff) },
      });
      state.quoteRoute = q.route;
      $("quote").innerHTML = "";
      const dl = document.createElement("dl");
      const rows = [
        ["From", q.pickup_name || "–"],
        ["To", q.dropoff_name || "–"],
        ["Fare", q.fare_text],
        ["Pick-up in", q.pickup_eta_s === null ? "no free car right now" : duration(q.pickup_eta_s)],
        ["Ride time", duration(q.trip_s)],
        ["Distance", distance(q.trip_m)],
        ["Walk to the car", distance(q.pickup_walk_m)],
      ];
      for (const [k, v] of rows) {
        const dt = document.createElement("dt");
        dt.textContent = k;
        const dd = document.createElement("dd");
        dd.textContent = v;
        dl.append(dt, dd);
      }
      dl.id = "quote-details";
      $("quote").append(dl);
      redraw();
    } catch (err) {
      $("booking-error").textContent = err.message;
    }
  }

  async function book() {
    $("booking-error").textContent = "";
    try {
      const ride = await api("/api/rides", {
        method: "POST",
        token: token(),
        body: { pickup: point(state.pickup), dropoff: point(state.dropoff) },
      });
      if (!state.quoteRoute.length) await quote().catch(() => {});
      show("receipt", false);
      follow(ride);
      loadHistory();
    } catch (err) {
      $("booking-error").textContent = err.message;
    }
  }

  function render(ride) {
    state.ride = ride;
    show("ride-panel", true);
    $("ride-status").textContent = STATE_TEXT[ride.state] || ride.state;
    $("ride-status").dataset.state = ride.state;
    show("ride-delayed", Boolean(ride.updates_delayed) && ride.live !== false);
    $("ride-from").textContent = ride.pickup_name || "–";
    $("ride-to").textContent = ride.dropoff_name || "–";
    $("ride-car").textContent = ride.vehicle_id || "–";
    $("ride-eta").textContent = ride.eta_s === null ? "–" : duration(ride.eta_s);
    const coming = ["assigned", "en_route"].includes(ride.state) && ride.vehicle && ride.pickup_curb;
    $("ride-distance").textContent = coming
      ? `${Math.round(metresBetween(ride.vehicle, ride.pickup_curb))} m from your pick-up`
      : "–";
    $("ride-greeting").textContent = ride.state === "arrived" && ride.greeting ? ride.greeting : ride.support_note || "";
    const link = $("car-link");
    if (ride.vehicle_id) {
      link.href = `/car/${encodeURIComponent(ride.vehicle_id)}`;
      link.hidden = false;
    } else {
      link.hidden = true;
    }
    const waiting = ride.live !== false && ride.state === "arrived";
    show("at-car", waiting);
    $("unlock").disabled = !waiting || ride.unlocked;
    $("unlock").textContent = ride.unlocked ? "Car unlocked" : "Unlock car";
    const honking = ride.signalled_s !== null && ride.sim_now_s - ride.signalled_s < SIGNAL_SHOWN_S;
    $("car-signal").textContent = !waiting
      ? ""
      : honking
        ? "Your car is honking and flashing its lights."
        : ride.unlocked
          ? "The doors are unlocked: get in, then fasten your seat belt."
          : "Your car is locked until you unlock it here.";
    const over = ["completed", "cancelled", "interrupted"].includes(ride.state);
    $("share").disabled = over || ride.live === false;
    if (over && !$("share-link").hidden) {
      showShare(null);
      $("share-text").textContent = "";
    }
    $("cancel").disabled = over || !["requested", "assigned", "en_route", "arrived", "boarded"].includes(ride.state);
    redraw();
  }

  async function follow(ride) {
    if (state.abort) state.abort.abort();
    const abort = new AbortController();
    state.abort = abort;
    render(ride);
    let ended = false;
    while (!abort.signal.aborted && !ended) {
      try {
        await stream(
          `/api/rides/${encodeURIComponent(ride.id)}/stream`,
          token(),
          (name, data) => {
            if (name === "ride") render(data);
            if (name === "end") ended = true;
          },
          abort.signal,
        );
      } catch (err) {
        if (abort.signal.aborted) return;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    if (ended) {
      await loadHistory();
      if (state.ride && state.ride.state === "completed") showReceipt(state.ride.id);
    }
  }

  async function carAction(path) {
    if (!state.ride) return;
    $("ride-error").textContent = "";
    try {
      render(await api(`/api/rides/${encodeURIComponent(state.ride.id)}/${path}`, { method: "POST", token: token() }));
    } catch (err) {
      $("ride-error").textContent = err.message;
    }
  }

  function showShare(url) {
    const link = $("share-link");
    link.hidden = !url;
    $("stop-sharing").hidden = !url;
    if (url) {
      const full = new URL(url, location.href).href;
      link.href = full;
      link.textContent = full;
      $("share-text").textContent = "Anyone with this link can follow your car until the ride ends.";
    }
  }

  async function share() {
    if (!state.ride) return;
    $("ride-error").textContent = "";
    try {
      const made = await api(`/api/rides/${encodeURIComponent(state.ride.id)}/share`, { method: "POST", token: token() });
      showShare(made.url);
      if (navigator.clipboard) navigator.clipboard.writeText($("share-link").href).catch(() => {});
    } catch (err) {
      $("ride-error").textContent = err.message;
    }
  }

  async function stopSharing() {
    if (!state.ride) return;
    try {
      await api(`/api/rides/${encodeURIComponent(state.ride.id)}/share`, { method: "DELETE", token: token() });
      showShare(null);
      $("share-text").textContent = "Sharing stopped: the links no longer work.";
    } catch (err) {
      $("ride-error").textContent = err.message;
    }
  }

  async function cancel() {
    if (!state.ride) return;
    $("ride-error").textContent = "";
    try {
      render(await api(`/api/rides/${encodeURIComponent(state.ride.id)}/cancel`, { method: "POST", token: token() }));
    } catch (err) {
      $("ride-error").textContent = err.message;
    }
  }

  async function loadHistory() {
    const rides = await api("/api/rides", { token: token() });
    const list = $("history");
    list.innerHTML = "";
    for (const r of rides) {
      const li = document.createElement("li");
      const fare = r.fare ? ` · ${r.fare.text}` : "";
      const where = r.pickup_name && r.dropoff_name ? `${r.pickup_name} → ${r.dropoff_name} · ` : "";
      li.textContent = `${where}${r.id.slice(0, 13)}… ${r.state}${r.close_reason ? ` (${r.close_reason})` : ""}${fare} `;
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = "Receipt";
      b.setAttribute("aria-label", `Receipt of ride ${r.id}`);
      b.addEventListener("click", () => showReceipt(r.id));
      li.append(b);
      list.append(li);
    }
    return rides;
  }

  async function showReceipt(rideId) {
    const rec = await api(`/api/rides/${encodeURIComponent(rideId)}/receipt`, { token: token() });
    const body = $("receipt-body");
    body.innerHTML = "";
    const rows = [
      ["Ride", rec.ride_id],
      ["From", rec.pickup_name || "–"],
      ["To", rec.dropoff_name || "–"],
      ["Outcome", rec.state + (rec.ended_by ? ` (${rec.ended_by})` : "")],
      ["Fare", rec.fare ? `${rec.fare.text} · ${rec.fare.note}` : "charged when the ride ends"],
      ["Car", rec.vehicle_id || "–"],
      ["Waited for the car", duration(rec.wait_s)],
      ["Ride time", duration(rec.ride_s)],
      ["Distance", distance(rec.ride_m)],
      ["Route on the map", rec.route_kind === "driven" ? "as driven" : rec.route_kind === "planned" ? "as planned" : "–"],
    ];
    if (rec.close_reason) rows.push(["Note", rec.close_reason]);
    for (const [k, v] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = v;
      body.append(dt, dd);
    }
    state.quoteRoute = rec.route;
    show("receipt", true);
    $("receipt").dataset.state = rec.state;
    redraw();
    $("receipt").focus();
  }

  $("signin-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => {
    if (state.abort) state.abort.abort();
    saveRider(null);
    location.reload();
  });
  $("place-search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(searchPlaces, 150);
  });
  $("place-search").addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      clearTimeout(searchTimer);
      searchPlaces();
    }
  });
  $("get-quote").addEventListener("click", quote);
  $("book").addEventListener("click", book);
  $("cancel").addEventListener("click", cancel);
  $("unlock").addEventListener("click", () => carAction("unlock"));
  $("share").addEventListener("click", share);
  $("stop-sharing").addEventListener("click", stopSharing);
  $("find-car").addEventListener("click", () => carAction("find-car"));
  $("clear").addEventListener("click", () => {
    state.pickup = state.dropoff = state.riderAt = null;
    state.quoteRoute = [];
    spotsFor = null;
    show("spots-panel", false);
    document.querySelector('input[name="pick"][value="pickup"]').checked = true;
    $("pickup-text").textContent = $("dropoff-text").textContent = "not set";
    $("quote").textContent = "";
    $("get-quote").disabled = $("book").disabled = true;
    redraw();
  });
  $("close-receipt").addEventListener("click", () => show("receipt", false));

  map.load().then(enter).catch((err) => {
    $("signin-error").textContent = `cannot reach the service: ${err.message}`;
  });
})();
