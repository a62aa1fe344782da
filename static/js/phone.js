// The phone in the browser: the incoming-call card over any page (its body is rendered by the
// server from the caller's profile), answer/decline through the Twilio Voice SDK when the
// account is configured, the caller log with mark-done and the wrap-up form, and the CTI
// settings page. Everything people read comes from the page's templates and data-* texts.
(function () {
  "use strict";

  var body = document.body;
  var me = body.dataset.userId ? Number(body.dataset.userId) : null;
  var api = function (url, options) { return window.helpdeskFetch(url, options); };
  var device = null;
  var incoming = new Map(); // CallSid -> Twilio call
  var TOKEN_URL = "/api/telephony/token"; // {token, identity, expires_in}

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  // ---- Twilio Voice SDK (only where an account is configured) ----------------------------
  function startTwilio() {
    if (body.dataset.twilio !== "on" || !window.Twilio || !window.Twilio.Device) return;
    api(TOKEN_URL).then(function (r) { return r.ok ? r.json() : null; }).then(function (grant) {
      if (!grant || !grant.token) return;
      device = new window.Twilio.Device(grant.token, { closeProtection: true });
      device.on("incoming", function (call) {
        var sid = call.parameters && call.parameters.CallSid;
        if (sid) incoming.set(sid, call);
        call.on("disconnect", function () { incoming.delete(sid); });
        call.on("cancel", function () { incoming.delete(sid); });
      });
      device.on("tokenWillExpire", function () {
        api(TOKEN_URL).then(function (r) { return r.ok ? r.json() : null; }).then(function (g) {
          if (g && g.token) device.updateToken(g.token);
        });
      });
      device.register();
    }).catch(function () {});
  }

  // ---- the incoming-call card -------------------------------------------------------------
  var cards = new Map(); // call id -> card element

  // call.ringing data: {call, caller: {number, display, withheld, known, customer_id, name},
  // profile | null}. The card's body is rendered by the server for this viewer.
  function popCard(call, caller, profile) {
    var slot = document.getElementById("screen-pop");
    var template = document.getElementById("pop-template");
    if (!slot || !template || cards.has(call.id)) return;
    caller = caller || {};
    var card = template.content.firstElementChild.cloneNode(true);
    card.dataset.callId = String(call.id);
    var number = caller.number || call.from || "";
    card.querySelector(".pop-number").textContent = caller.display || number;
    var target = card.querySelector(".pop-body");
    slot.appendChild(card);
    cards.set(call.id, card);
    var customer = (profile && profile.id) || caller.customer_id || call.customer_id;
    var query = customer ? { customer_id: customer, number: number } : { number: caller.withheld ? "" : number };
    var url = "/phone/card?" + new URLSearchParams(query).toString();
    if (window.htmx) window.htmx.ajax("GET", url, { target: target, swap: "innerHTML" });
    var twilioCall = incoming.get(call.call_id);
    var answer = card.querySelector(".pop-answer");
    var decline = card.querySelector(".pop-decline");
    if (!twilioCall) { answer.hidden = true; decline.hidden = true; }
    answer.addEventListener("click", function () {
      var c = incoming.get(call.call_id);
      if (c) c.accept();
      card.classList.add("answered");
    });
    decline.addEventListener("click", function () {
      var c = incoming.get(call.call_id);
      if (c) c.reject();
      closeCard(call.id);
    });
    card.querySelector(".pop-close").addEventListener("click", function () { closeCard(call.id); });
  }

  function closeCard(id) {
    var card = cards.get(id);
    if (card) card.remove();
    cards.delete(id);
  }

  function wrapUp(call) {
    var slot = document.getElementById("screen-pop");
    var template = document.getElementById("wrapup-template");
    if (!slot || !template) return;
    var form = template.content.firstElementChild.cloneNode(true);
    form.classList.add("pop-card");
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var data = new FormData(form);
      var payload = { notes: data.get("notes") };
      if (call.ticket_id) payload.ticket_id = call.ticket_id;
      if (data.get("status")) payload.status = data.get("status");
      api("/api/calls/" + call.id + "/wrapup", { method: "POST", body: JSON.stringify(payload) })
        .then(function (r) { if (r.ok) form.remove(); });
    });
    slot.appendChild(form);
  }

  // call.answered data: {call, operator_id, open: {ticket_id} | {customer_id} | {new_ticket}}.
  function answered(call, data) {
    var operator = data.operator_id !== undefined && data.operator_id !== null ? data.operator_id : call.operator_id;
    if (operator !== me) { closeCard(call.id); return; }
    var card = cards.get(call.id);
    if (!card) return;
    card.classList.add("answered");
    var open = data.open || {};
    if (open.ticket_id) card.dataset.ticketId = String(open.ticket_id);
    else if (open.customer_id) card.dataset.customerId = String(open.customer_id);
  }

  if (window.helpdeskOnEvent) {
    window.helpdeskOnEvent(function (frame, data) {
      var call = data.call || null;
      if (!call) return;
      if (frame.type === "call.ringing") popCard(call, data.caller || null, data.profile || null);
      else if (frame.type === "call.answered") answered(call, data);
      else if (frame.type === "call.missed") closeCard(call.id);
      else if (frame.type === "call.ended") {
        closeCard(call.id);
        if (call.operator_id === me && call.answered_at) wrapUp(call);
      }
    });
  }

  // ---- the caller log page ----------------------------------------------------------------
  function callLog() {
    var root = document.getElementById("call-log");
    if (!root || !root.dataset.connected) return; // the page says the phone system is missing
    var rows = document.getElementById("call-rows");
    var status = document.getElementById("call-status");
    var shown = [];
    var t = root.dataset;

    function seconds(n) { return n === null || n === undefined ? "—" : Math.round(n) + "s"; }
    function load() {
      var done = new FormData(document.getElementById("call-filter")).get("done");
      var query = done === "false" ? "?done=false&limit=100" : "?limit=100";
      api("/api/calls" + query).then(function (r) {
        if (!r.ok) throw new Error(String(r.status));
        return r.json();
      }).then(function (page) { draw(page.items || []); }).catch(function () {
        rows.replaceChildren();
        status.textContent = t.unavailable;
      });
    }
    function draw(items) {
      shown = items;
      rows.replaceChildren();
      status.textContent = items.length ? "" : t.empty;
      items.forEach(function (c) {
        var tr = el("tr");
        tr.dataset.callId = String(c.id);
        var missed = c.direction === "in" && !c.answered_at && c.state === "ended";
        tr.appendChild(el("td", c.started_at ? new Date(c.started_at).toLocaleString(document.documentElement.lang) : ""));
        tr.appendChild(el("td", c.direction === "in" ? t.dirIn : t.dirOut));
        var number = el("td", c.direction === "in" ? c.from : c.to);
        number.setAttribute("translate", "no");
        tr.appendChild(number);
        var who = el("td");
        if (c.customer_id) {
          var link = el("a", "#" + c.customer_id);
          link.href = "/customers/" + c.customer_id;
          who.appendChild(link);
        } else who.textContent = t.newCustomer;
        tr.appendChild(who);
        tr.appendChild(el("td", missed ? t.missed : (t["state" + c.state.charAt(0).toUpperCase() + c.state.slice(1)] || c.state),
          missed ? "badge missed" : ""));
        tr.appendChild(el("td", seconds(c.wait_seconds)));
        tr.appendChild(el("td", seconds(c.talk_seconds)));
        var actions = el("td");
        if (!c.done) {
          var mark = el("button", t.markDone);
          mark.type = "button";
          mark.addEventListener("click", function () {
            api("/api/calls/" + c.id + "/done", { method: "POST" }).then(load);
          });
          actions.appendChild(mark);
        } else actions.appendChild(el("span", t.done));
        if (c.state === "ended" && c.answered_at) {
          var wrap = el("button", t.wrapup);
          wrap.type = "button";
          wrap.addEventListener("click", function () { wrapUp(c); });
          actions.appendChild(wrap);
        }
        tr.appendChild(actions);
        rows.appendChild(tr);
      });
    }
    document.getElementById("call-filter").addEventListener("change", load);
    document.getElementById("mark-all-done").addEventListener("click", function () {
      var ids = shown.filter(function (c) { return !c.done; }).map(function (c) { return c.id; });
      if (ids.length) api("/api/calls/done", { method: "POST", body: JSON.stringify({ ids: ids }) }).then(load);
    });
    if (window.helpdeskOnEvent) {
      window.helpdeskOnEvent(function (frame) { if (frame.type.indexOf("call.") === 0) load(); });
    }
    load();
  }

  // ---- CTI settings page -------------------------------------------------------------------
  function ctiAdmin() {
    var form = document.getElementById("cti-form");
    if (!form || !form.dataset.connected) return; // the page says the phone system is missing
    var rows = document.getElementById("routing-rows");
    var status = document.getElementById("cti-status");
    function route(dest, callerId) {
      var tr = el("tr");
      [["dest", dest], ["caller_id", callerId]].forEach(function (pair) {
        var td = el("td");
        var input = el("input");
        input.name = pair[0];
        input.value = pair[1] || "";
        input.setAttribute("aria-label", pair[0]);
        td.appendChild(input);
        tr.appendChild(td);
      });
      var remove = el("button", form.dataset.remove);
      remove.type = "button";
      remove.addEventListener("click", function () { tr.remove(); });
      var td = el("td");
      td.appendChild(remove);
      tr.appendChild(td);
      rows.appendChild(tr);
    }
    api("/api/admin/cti").then(function (r) {
      if (!r.ok) throw new Error(String(r.status));
      return r.json();
    }).then(function (cfg) {
      form.elements.blocked_caller_ids.value = (cfg.blocked_caller_ids || []).join("\n");
      form.elements.default_caller_id.value = cfg.default_caller_id || "";
      (cfg.routing_table || []).forEach(function (r) { route(r.dest, r.caller_id); });
    }).catch(function () { status.textContent = form.dataset.unavailable; });
    document.getElementById("add-route").addEventListener("click", function () { route("", ""); });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var table = Array.from(rows.querySelectorAll("tr")).map(function (tr) {
        return { dest: tr.querySelector('[name="dest"]').value.trim(),
                 caller_id: tr.querySelector('[name="caller_id"]').value.trim() };
      }).filter(function (r) { return r.dest; });
      var payload = {
        blocked_caller_ids: form.elements.blocked_caller_ids.value.split("\n").map(function (s) { return s.trim(); })
          .filter(Boolean),
        routing_table: table,
        default_caller_id: form.elements.default_caller_id.value.trim() || null,
      };
      api("/api/admin/cti", { method: "PUT", body: JSON.stringify(payload) }).then(function (r) {
        status.textContent = r.ok ? form.dataset.saved : form.dataset.unavailable;
      });
    });
  }

  startTwilio();
  callLog();
  ctiAdmin();
})();
