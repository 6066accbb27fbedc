// The rider app's support panel: ask for help (about a ride, whose car is attached), read
// support's replies, write back, close. Apart from app.js: it only needs the rider's token.
"use strict";

(() => {
  const { api, rider } = Robotaxi;
  const $ = (id) => document.getElementById(id);
  const STATUS_TEXT = {
    open: "waiting for support",
    answered: "support replied",
    closed: "closed",
  };
  let shown = "";

  function token() {
    const r = rider();
    return r ? r.token : "";
  }

  function when(iso) {
    return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  async function loadRides() {
    const rides = await api("/api/rides?limit=10", { token: token() });
    const select = $("ticket-ride");
    const chosen = select.value;
    select.innerHTML = "";
    const none = document.createElement("option");
    none.value = "";
    none.textContent = "no particular ride";
    select.append(none);
    for (const r of rides) {
      const option = document.createElement("option");
      option.value = r.id;
      option.textContent = `ride ${r.id.slice(0, 13)}… (${r.state}${r.vehicle_id ? `, car ${r.vehicle_id}` : ""})`;
      select.append(option);
    }
    if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
  }

  function ticketItem(t, drafts) {
    const li = document.createElement("li");
    li.dataset.ticket = String(t.id);
    li.dataset.status = t.status;
    const head = document.createElement("p");
    const about = t.vehicle_id ? ` · car ${t.vehicle_id}` : "";
    head.innerHTML = "";
    const strong = document.createElement("strong");
    strong.textContent = `Ticket ${t.id}: ${STATUS_TEXT[t.status] || t.status}`;
    head.append(strong, document.createTextNode(about));
    const log = document.createElement("ul");
    log.className = "plain";
    for (const m of [{ author: "rider", text: t.text, created_at: t.created_at }, ...t.messages]) {
      const line = document.createElement("li");
      line.dataset.author = m.author;
      if (m.text === null) {
        line.textContent = `${when(m.created_at)} ${m.author === "operator" ? "Support closed this ticket" : "You closed this ticket"}`;
      } else {
        line.textContent = `${when(m.created_at)} ${m.author === "operator" ? "Support" : "You"}: ${m.text}`;
      }
      log.append(line);
    }
    li.append(head, log);
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "text";
    input.maxLength = 2000;
    input.id = `follow-up-${t.id}`;
    input.value = drafts.get(t.id) || "";
    label.htmlFor = input.id;
    label.textContent = t.status === "closed" ? "Write again (reopens the ticket)" : "Write to support";
    const send = document.createElement("button");
    send.type = "button";
    send.textContent = "Send";
    send.setAttribute("aria-label", `Send a message about ticket ${t.id}`);
    send.addEventListener("click", () => followUp(t.id, input));
    li.append(label, input, send);
    if (t.status !== "closed") {
      const close = document.createElement("button");
      close.type = "button";
      close.textContent = "Close ticket";
      close.setAttribute("aria-label", `Close ticket ${t.id}`);
      close.addEventListener("click", () => closeTicket(t.id));
      li.append(close);
    }
    return li;
  }

  async function refresh() {
    const me = rider();
    $("support-panel").hidden = !me;
    if (!me) return;
    let tickets;
    try {
      tickets = await api("/api/tickets", { token: token() });
    } catch (_) {
      return; // signed out or offline: the next round tries again
    }
    const key = JSON.stringify(tickets);
    if (key === shown) return; // keeps what the rider is typing
    shown = key;
    const list = $("tickets");
    const drafts = new Map();
    for (const input of list.querySelectorAll("input")) {
      drafts.set(Number(input.id.replace("follow-up-", "")), input.value);
    }
    const focused = document.activeElement && list.contains(document.activeElement)
      ? document.activeElement.id : null;
    list.innerHTML = "";
    for (const t of tickets.slice().reverse()) list.append(ticketItem(t, drafts));
    if (focused && $(focused)) $(focused).focus();
  }

  async function followUp(ticketId, input) {
    const text = input.value.trim();
    if (!text) return;
    try {
      await api(`/api/tickets/${ticketId}/messages`, { method: "POST", token: token(), body: { text } });
      input.value = "";
      $("ticket-result").textContent = `Sent to support (ticket ${ticketId}).`;
      await refresh();
    } catch (err) {
      $("ticket-result").textContent = err.message;
    }
  }

  async function closeTicket(ticketId) {
    try {
      await api(`/api/tickets/${ticketId}/close`, { method: "POST", token: token() });
      $("ticket-result").textContent = `Ticket ${ticketId} closed.`;
      await refresh();
    } catch (err) {
      $("ticket-result").textContent = err.message;
    }
  }

  $("ticket-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const rideId = $("ticket-ride").value || null;
    try {
      const ticket = await api("/api/tickets", {
        method: "POST",
        token: token(),
        body: { text: $("ticket-text").value, ride_id: rideId },
      });
      $("ticket-text").value = "";
      $("ticket-result").textContent = `Ticket ${ticket.id} sent: support's reply will show here.`;
      await refresh();
    } catch (err) {
      $("ticket-result").textContent = err.message;
    }
  });
  $("ticket-ride").addEventListener("focus", () => loadRides().catch(() => {}));

  function start() {
    refresh();
    if (rider()) loadRides().catch(() => {});
  }
  start();
  setInterval(refresh, 3000);
  // app.js signs the rider in; look again shortly after a sign-in form is sent
  $("signin-form").addEventListener("submit", () => setTimeout(start, 800));
})();
