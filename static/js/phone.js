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
  var lastIncoming = null;  // a transfer's receiver answers the leg Twilio rang them with
  var consultUntil = 0;     // until when this browser expects its consultation leg
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
        // A warm transfer calls its first operator into the consultation: take it at once.
        if (consultUntil > Date.now()) { consultUntil = 0; call.accept(); return; }
        lastIncoming = call;
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

  // ---- texts from the page's <template id="call-texts"> ----------------------------------
  function text(key, values) {
    var holder = document.getElementById("call-texts");
    var node = holder && holder.content.querySelector(".text-" + key);
    var out = node ? node.textContent.trim() : key;
    Object.keys(values || {}).forEach(function (k) { out = out.replace("{" + k + "}", values[k]); });
    return out;
  }
  function clock(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var m = Math.floor(seconds / 60), s = seconds % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }
  function since(iso) { return iso ? (Date.now() - new Date(iso).getTime()) / 1000 : 0; }
  function remember(key, value) {
    try {
      if (value === null) sessionStorage.removeItem(key);
      else sessionStorage.setItem(key, JSON.stringify(value));
    } catch (err) { /* private mode: the panels still work on this page */ }
  }
  function recall(key) {
    try { return JSON.parse(sessionStorage.getItem(key) || "null"); } catch (err) { return null; }
  }
  var ACTIVE = "helpdesk.call.active";   // {id, answered_at, ticket_id, number}
  var WRAPUP = "helpdesk.call.wrapup";   // {id, ticket_id, closed}
  var timers = [];
  setInterval(function () { timers.forEach(function (tick) { tick(); }); }, 1000);

  // ---- the incoming-call card -------------------------------------------------------------
  var cards = new Map(); // call id -> card element

  // call.ringing data: {call, caller: {number, display, withheld, known, customer_id, name},
  // profile | null, transfer?: {id, mode, from_name, notes}}. The card's body is rendered by
  // the server for this viewer.
  function popCard(call, caller, profile, transfer) {
    var slot = document.getElementById("screen-pop");
    var template = document.getElementById("pop-template");
    if (!slot || !template) return;
    if (cards.has(call.id)) closeCard(call.id);
    caller = caller || {};
    var card = template.content.firstElementChild.cloneNode(true);
    card.dataset.callId = String(call.id);
    var number = caller.number || call.from || "";
    card.querySelector(".pop-number").textContent = caller.display || number;
    if (call.ticket_id) {
      var link = card.querySelector(".pop-ticket-link");
      link.href = "/tickets/" + call.ticket_id;
      card.querySelector(".pop-ticket").hidden = false;
    }
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
    if (transfer) {
      card.classList.add("transfer");
      card.querySelector(".pop-transfer").hidden = false;
      card.querySelector(".pop-transfer-from").textContent = transfer.from_name || "";
      card.querySelector(".pop-transfer-notes").textContent = transfer.notes || "";
      var accept = card.querySelector(".pop-accept");
      accept.hidden = false;
      accept.addEventListener("click", function () {
        var c = incoming.get(call.call_id) || lastIncoming;
        if (c) c.accept();
        api("/api/calls/" + call.id + "/transfer/complete", { method: "POST" });
      });
    }
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

  // ---- the call in progress: talk timer, its ticket, transfer -------------------------------
  var bar = null;
  function showCallBar(active) {
    var slot = document.getElementById("screen-pop");
    var template = document.getElementById("callbar-template");
    if (!slot || !template || !active) return;
    if (bar) bar.remove();
    bar = template.content.firstElementChild.cloneNode(true);
    bar.dataset.callId = String(active.id);
    bar.querySelector(".call-number").textContent = active.number || "";
    var timer = bar.querySelector(".call-timer");
    var tick = function () { timer.textContent = clock(since(active.answered_at)); };
    tick();
    timers.push(tick);
    if (active.ticket_id) {
      var link = bar.querySelector(".call-ticket");
      link.href = "/tickets/" + active.ticket_id;
      link.hidden = false;
    }
    wireTransfer(bar, active);
    slot.prepend(bar);
  }
  function endCallBar() {
    if (bar) bar.remove();
    bar = null;
    timers = [];
    remember(ACTIVE, null);
  }

  function wireTransfer(root, active) {
    var form = root.querySelector(".transfer-form");
    var status = root.querySelector(".transfer-status");
    var select = form.elements.target;
    var complete = root.querySelector(".transfer-complete");
    var cancel = root.querySelector(".transfer-cancel");
    function say(message) { status.textContent = message; status.hidden = !message; }
    function failed(r) {
      return r.json().then(function (b) { say(text("failed", { reason: b.detail || r.status })); },
        function () { say(text("failed", { reason: r.status })); });
    }
    root.querySelector(".call-transfer").addEventListener("click", function () {
      form.hidden = !form.hidden;
      if (select.options.length) return;
      api("/api/calls/transfer-targets").then(function (r) { return r.json(); }).then(function (t) {
        (t.operators || []).forEach(function (op) {
          var option = el("option", op.name);
          option.value = "user:" + op.id;
          option.setAttribute("translate", "no");
          select.appendChild(option);
        });
        (t.inboxes || []).forEach(function (inbox) {
          var option = el("option", text("queue", { name: inbox.name }));
          option.value = "inbox:" + inbox.id;
          select.appendChild(option);
        });
      });
    });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var parts = select.value.split(":");
      var data = new FormData(form);
      var payload = { mode: data.get("mode"), notes: data.get("notes") || "" };
      payload[parts[0] === "user" ? "to_user_id" : "to_inbox_id"] = Number(parts[1]);
      // Twilio rings this browser into the consultation while the request is still answering.
      if (payload.mode === "warm") consultUntil = Date.now() + 30000;
      api("/api/calls/" + active.id + "/transfer", { method: "POST", body: JSON.stringify(payload) })
        .then(function (r) {
          if (!r.ok) { consultUntil = 0; return failed(r); }
          form.hidden = true;
          if (payload.mode === "warm") {
            say(text("consulting"));
            complete.hidden = false;
            cancel.hidden = false;
          } else say(text("handed"));
        });
    });
    complete.addEventListener("click", function () {
      api("/api/calls/" + active.id + "/transfer/complete", { method: "POST" }).then(function (r) {
        if (!r.ok) return failed(r);
        endCallBar();
      });
    });
    cancel.addEventListener("click", function () {
      api("/api/calls/" + active.id + "/transfer/cancel", { method: "POST" }).then(function (r) {
        if (!r.ok) return failed(r);
        complete.hidden = true;
        cancel.hidden = true;
        say("");
      });
    });
  }

  // ---- after-call work: the wrap-up panel with its timer ------------------------------------
  var panel = null;
  function openWrapup(callId) {
    var slot = document.getElementById("screen-pop");
    var template = document.getElementById("wrapup-template");
    if (!slot || !template) return;
    if (panel) panel.remove();
    var form = template.content.firstElementChild.cloneNode(true);
    form.dataset.callId = String(callId);
    panel = form;
    slot.appendChild(form);
    var error = form.querySelector(".wrapup-error");
    api("/api/calls/" + callId + "/wrapup").then(function (r) {
      if (!r.ok) throw new Error(String(r.status));
      return r.json();
    }).then(function (view) {
      var select = form.elements.disposition;
      view.dispositions.forEach(function (code) {
        var option = el("option", text(code));
        option.value = code;
        select.appendChild(option);
      });
      var ticketId = (view.wrapup && view.wrapup.ticket_id) || view.call.ticket_id;
      form.dataset.ticketId = ticketId ? String(ticketId) : "";
      if (ticketId) {
        var link = form.querySelector(".wrapup-ticket");
        link.href = "/tickets/" + ticketId;
        link.textContent = text("ticket", { number: ticketId });
        link.hidden = false;
      }
      var w = view.wrapup;
      var timer = form.querySelector(".acw-timer");
      if (w && w.submitted_at) timer.textContent = clock(w.acw_seconds || 0);
      else {
        var started = (w && w.started_at) || view.call.ended_at;
        var tick = function () { timer.textContent = clock(since(started)); };
        tick();
        timers.push(tick);
      }
    }).catch(function (err) { error.textContent = String(err.message); error.hidden = false; });
    form.querySelector(".wrapup-close").addEventListener("click", function () {
      form.remove();
      panel = null;
      var saved = recall(WRAPUP);
      if (saved && saved.id === callId) { saved.closed = true; remember(WRAPUP, saved); }
    });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var data = new FormData(form);
      var payload = { disposition: data.get("disposition"), notes: data.get("notes") || "" };
      if (form.dataset.ticketId) payload.ticket_id = Number(form.dataset.ticketId);
      if (data.get("status")) payload.status = data.get("status");
      if (data.get("follow_up_on")) payload.follow_up_on = data.get("follow_up_on");
      api("/api/calls/" + callId + "/wrapup", { method: "POST", body: JSON.stringify(payload) })
        .then(function (r) {
          if (r.ok) {
            form.remove();
            panel = null;
            var saved = recall(WRAPUP);
            if (saved && saved.id === callId) remember(WRAPUP, null);
            return;
          }
          return r.json().then(function (b) {
            error.textContent = typeof b.detail === "string" ? b.detail : JSON.stringify(b.detail);
            error.hidden = false;
          });
        });
    });
  }
  window.helpdeskOpenWrapup = openWrapup;

  // call.answered data: {call, operator_id, open: {ticket_id} | {customer_id} | {new_ticket}}.
  function answered(call, data) {
    var operator = data.operator_id !== undefined && data.operator_id !== null ? data.operator_id : call.operator_id;
    var card = document.querySelector(".pop-card[data-call-id='" + call.id + "'] .pop-number");
    var number = card ? card.textContent : (call.direction === "out" ? (call.to_display || call.to)
      : (call.from_display || call.from));
    closeCard(call.id);
    if (operator !== me) return;
    var open = data.open || {};
    var active = { id: call.id, answered_at: call.answered_at || new Date().toISOString(),
                   ticket_id: open.ticket_id || call.ticket_id || null,
                   number: number };
    remember(ACTIVE, active);
    var here = document.getElementById("ticket-page");
    if (active.ticket_id && !(here && here.dataset.ticketId === String(active.ticket_id))) {
      window.location.assign("/tickets/" + active.ticket_id);
      return;
    }
    if (!active.ticket_id && open.customer_id) {
      window.location.assign("/customers/" + open.customer_id);
      return;
    }
    showCallBar(active);
  }

  function ended(call) {
    closeCard(call.id);
    var active = recall(ACTIVE);
    if (active && active.id === call.id) endCallBar();
    if (call.operator_id === me && call.answered_at && !call.voicemail) {
      remember(WRAPUP, { id: call.id, ticket_id: call.ticket_id, closed: false });
      openWrapup(call.id);
    }
  }

  function transferred(call, data) {
    var t = data.transfer || {};
    if (t.from_user_id === me && call.operator_id !== me) endCallBar();
  }

  if (window.helpdeskOnEvent) {
    window.helpdeskOnEvent(function (frame, data) {
      var call = data.call || null;
      if (!call) return;
      if (frame.type === "call.ringing") popCard(call, data.caller || null, data.profile || null, data.transfer || null);
      else if (frame.type === "call.answered") answered(call, data);
      else if (frame.type === "call.missed") closeCard(call.id);
      else if (frame.type === "call.transferred") transferred(call, data);
      else if (frame.type === "call.ended") ended(call);
    });
  }

  // A call or an unfinished wrap-up carries over from page to page.
  (function restore() {
    var active = recall(ACTIVE);
    if (active) showCallBar(active);
    var pending = recall(WRAPUP);
    if (pending && !pending.closed) openWrapup(pending.id);
  })();

  // ---- the caller log page ----------------------------------------------------------------
  function callLog() {
    var root = document.getElementById("call-log");
    if (!root || !root.dataset.connected) return; // the page says the phone system is missing
    var rows = document.getElementById("call-rows");
    var status = document.getElementById("call-status");
    var shown = [];
    var t = root.dataset;

    function seconds(n) {
      if (n === null || n === undefined) return "—";
      n = Math.round(n);
      var m = Math.floor(n / 60);
      return m ? t.minutes.replace("{m}", m).replace("{s}", n % 60) : t.seconds.replace("{s}", n);
    }
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
    function button(label, onClick) {
      var b = el("button", label);
      b.type = "button";
      b.addEventListener("click", onClick);
      return b;
    }
    function callBack(c, cell) {
      var form = el("form", null, "callback-form");
      var select = el("select");
      select.name = "result";
      select.setAttribute("aria-label", t.result);
      [["reached", t.reached], ["no_answer", t.noAnswer], ["voicemail", t.leftVoicemail],
       ["wrong_number", t.wrongNumber]].forEach(function (pair) {
        var option = el("option", pair[1]);
        option.value = pair[0];
        select.appendChild(option);
      });
      var save = el("button", t.saveResult);
      save.type = "submit";
      form.appendChild(select);
      form.appendChild(save);
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        api("/api/calls/" + c.id + "/callback", { method: "POST", body: JSON.stringify({ result: select.value }) })
          .then(load);
      });
      cell.appendChild(form);
      var number = c.direction === "in" ? c.from : c.to;
      if (c.withheld || !number) return;
      cell.appendChild(button(t.callBack, function () {
        api("/api/calls/outbound", { method: "POST", body: JSON.stringify({
          to: number, customer_id: c.customer_id, callback_of: c.id }) }).then(function (r) {
          if (!r.ok) window.location.href = "tel:" + number;
        });
      }));
    }
    function draw(items) {
      shown = items;
      rows.replaceChildren();
      status.textContent = items.length ? "" : t.empty;
      items.forEach(function (c) {
        var tr = el("tr");
        tr.dataset.callId = String(c.id);
        var missed = c.direction === "in" && !c.answered_at && c.state === "ended";
        var answeredByMachine = c.voicemail && c.state === "ended";
        tr.appendChild(el("td", c.started_at ? new Date(c.started_at).toLocaleString(document.documentElement.lang) : ""));
        tr.appendChild(el("td", c.direction === "in" ? t.dirIn : t.dirOut));
        // The server formats numbers as the deployment's people write them (090-1072-7576).
        var number = el("td", c.withheld ? t.withheld
          : (c.direction === "in" ? (c.from_display || c.from) : (c.to_display || c.to)));
        if (!c.withheld) number.setAttribute("translate", "no");
        tr.appendChild(number);
        var who = el("td", null, "call-customer");
        if (c.customer_id) {
          var link = el("a", c.customer_name || "—");
          link.href = "/customers/" + c.customer_id;
          link.setAttribute("translate", "no");
          who.appendChild(link);
        } else who.textContent = c.withheld ? t.withheld : t.newCustomer;
        tr.appendChild(who);
        var op = el("td", c.operator_name || "—", "call-operator");
        op.setAttribute("translate", "no");
        tr.appendChild(op);
        var ticket = el("td");
        if (c.ticket_id) {
          var tl = el("a", t.ticket.replace("{number}", c.ticket_number || c.ticket_id));
          tl.href = "/tickets/" + c.ticket_id;
          ticket.appendChild(tl);
        }
        tr.appendChild(ticket);
        var state = el("td");
        var label = answeredByMachine ? t.voicemail : missed ? t.missed
          : (t["state" + c.state.charAt(0).toUpperCase() + c.state.slice(1)] || c.state);
        state.appendChild(el("span", label, "badge" + (missed || answeredByMachine ? " missed" : "")));
        if (c.recording_url) {
          var audio = el("audio");
          audio.controls = true;
          audio.preload = "none";
          audio.src = c.provider === "twilio" && !/\.(mp3|wav)$/.test(c.recording_url) ? c.recording_url + ".mp3" : c.recording_url;
          audio.setAttribute("aria-label", t.recording);
          if (answeredByMachine && !c.done) {
            // A voicemail is done once someone has listened to it.
            audio.addEventListener("ended", function () {
              api("/api/calls/" + c.id + "/done", { method: "POST" }).then(load);
            }, { once: true });
          }
          state.appendChild(audio);
          if (c.recording_seconds !== null && c.recording_seconds !== undefined) state.appendChild(el("span", seconds(c.recording_seconds), "duration"));
        }
        tr.appendChild(state);
        tr.appendChild(el("td", seconds(c.wait_seconds)));
        tr.appendChild(el("td", seconds(c.talk_seconds)));
        var actions = el("td", null, "actions");
        if (!c.done) {
          actions.appendChild(button(t.markDone, function () {
            api("/api/calls/" + c.id + "/done", { method: "POST" }).then(load);
          }));
        } else actions.appendChild(el("span", t.done));
        if ((missed || answeredByMachine) && !c.done) callBack(c, actions);
        if (c.state === "ended" && c.answered_at && !c.voicemail) {
          actions.appendChild(button(t.wrapup, function () { openWrapup(c.id); }));
          if (c.wrapup && c.wrapup.submitted_at) actions.appendChild(el("span", t.acw.replace("{time}", seconds(c.wrapup.acw_seconds)), "acw"));
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

  // ---- recordings in a ticket's thread ------------------------------------------------------
  // A call's recording or voicemail is an internal entry whose first line names it (通話録音 /
  // 留守番電話 and its length) and whose last line is the recording's address: play it in place.
  function recordingsInThread() {
    var thread = document.getElementById("thread");
    if (!thread) return;
    thread.querySelectorAll(".msg-note .body-text").forEach(function (entry) {
      if (entry.querySelector("audio")) return;
      var lines = entry.textContent.trim().split("\n");
      var address = lines[lines.length - 1].trim();
      if (lines.length < 2 || !/^(通話録音|留守番電話)/.test(lines[0]) || !/^https:\/\/\S+$/.test(address)) return;
      var audio = el("audio");
      audio.controls = true;
      audio.preload = "none";
      audio.src = /\.(mp3|wav)$/.test(address) ? address : address + ".mp3";
      entry.appendChild(audio);
    });
  }
  document.addEventListener("htmx:afterSwap", recordingsInThread);
  recordingsInThread();

  startTwilio();
  callLog();
  ctiAdmin();
})();
