// Page behaviour: live updates from the socket (live.js dispatches `helpdesk:event`), presence
// indicators on tickets, keyboard shortcuts, toasts. Text shown to people comes from the
// server-rendered page (data-* attributes and <template>s), so it is translated there.
(function () {
  "use strict";

  var body = document.body;
  var me = body.dataset.userId ? Number(body.dataset.userId) : null;
  var page = body.dataset.page || "";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // JSON calls to the API with the session cookie carry the CSRF token like htmx requests do.
  window.helpdeskFetch = function (url, options) {
    options = options || {};
    var headers = Object.assign({ "X-CSRF-Token": csrfToken(), Accept: "application/json" },
      options.body ? { "Content-Type": "application/json" } : {}, options.headers || {});
    return fetch(url, Object.assign({}, options, { headers: headers, credentials: "same-origin" }));
  };

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  function send(frame) {
    if (window.helpdeskLive && typeof window.helpdeskLive.send === "function") {
      try { window.helpdeskLive.send(frame); } catch (err) { /* the socket reconnects by itself */ }
    }
  }

  // Each target is its own request source, so refreshes of different parts never queue behind
  // (and silently replace) one another.
  function refresh(url, target) {
    var el = document.querySelector(target);
    if (window.htmx && el) {
      return window.htmx.ajax("GET", url, { source: el, target: el, swap: "outerHTML" });
    }
    return Promise.resolve();
  }

  var handlers = [];
  function onEvent(fn) { handlers.push(fn); }
  document.addEventListener("helpdesk:event", function (e) {
    var frame = e.detail || {};
    handlers.forEach(function (fn) {
      try { fn(frame, frame.data || {}); } catch (err) { console.error(err); }
    });
  });
  window.helpdeskOnEvent = onEvent;

  // Selects that submit their form on change (the language switch).
  document.addEventListener("change", function (e) {
    if (e.target.matches && e.target.matches("[data-autosubmit]")) e.target.form.requestSubmit();
  });
  document.querySelectorAll(".js-hide").forEach(function (el) { el.hidden = true; });

  // Toasts leave after a while.
  var toasts = document.getElementById("toasts");
  if (toasts) {
    new MutationObserver(function () {
      Array.prototype.forEach.call(toasts.children, function (t) {
        if (!t.dataset.timer) {
          t.dataset.timer = "1";
          setTimeout(function () { t.remove(); }, 8000);
        }
      });
    }).observe(toasts, { childList: true });
  }

  function isTicketEvent(type) {
    return type === "ticket.created" || type === "ticket.updated" || type === "ticket.assigned" ||
      type === "message.created";
  }

  // ---- inbox: counts and list follow the socket ------------------------------------------
  function inboxPage() {
    var selected = null;
    function liveUrl() {
      var main = document.getElementById("inbox-main");
      return main ? main.dataset.liveUrl : null;
    }
    function rows() { return Array.prototype.slice.call(document.querySelectorAll(".ticket-row")); }
    function select(row) {
      rows().forEach(function (r) { r.classList.remove("selected"); r.removeAttribute("aria-selected"); });
      if (!row) return;
      row.classList.add("selected");
      row.setAttribute("aria-selected", "true");
      row.focus({ preventScroll: false });
      selected = row.dataset.ticketId;
    }
    function mark(known) {
      rows().forEach(function (r) {
        if (!known.has(r.dataset.ticketId)) r.classList.add("is-new");
        if (r.dataset.ticketId === selected) r.classList.add("selected");
      });
    }
    // Once further pages are loaded, a live refresh would drop them (and the reader's place):
    // then only the counts follow, until the list is filtered or reloaded.
    var paged = false;
    body.addEventListener("htmx:beforeRequest", function (e) {
      if (e.target.closest && e.target.closest(".more-row")) paged = true;
    });
    body.addEventListener("htmx:afterSwap", function (e) {
      if (e.target.id === "inbox-main") paged = false;
    });
    // A live refresh asked for before the view changed (another tab, a search) brings the old
    // view's rows and counts: they are dropped rather than shown over the new view. The check
    // sits on the element itself, which may no longer be in the page when the answer comes.
    function liveRefresh(url, target) {
      var el = document.querySelector(target);
      if (!el) return Promise.resolve();
      el.addEventListener("htmx:beforeSwap", function drop(e) {
        el.removeEventListener("htmx:beforeSwap", drop);
        if (!el.isConnected || liveUrl() !== url) e.detail.shouldSwap = false;
      });
      return refresh(url, target);
    }
    // Selected rows (for a bulk change) are not swept away by a live refresh either.
    function picked() { return document.querySelectorAll(".ticket-row input[name=ids]:checked"); }
    function showBulk() {
      var form = document.getElementById("bulk-form");
      if (!form) return;
      var n = picked().length;
      form.hidden = n === 0;
      var count = document.getElementById("bulk-count");
      if (count) count.textContent = (form.dataset.countText || "").replace("{n}", String(n));
    }
    // What is selected is remembered, so a refresh already on its way does not drop it.
    var chosen = new Set();
    body.addEventListener("change", function (e) {
      if (e.target.id === "pick-all") {
        document.querySelectorAll(".ticket-row input[name=ids]").forEach(function (box) {
          box.checked = e.target.checked;
        });
      }
      if (e.target.id === "pick-all" || e.target.name === "ids") {
        chosen = new Set(Array.prototype.map.call(picked(), function (box) { return box.value; }));
        showBulk();
      }
    });
    body.addEventListener("htmx:afterSwap", function (e) {
      if (e.target.id === "inbox-main") chosen = new Set();
      document.querySelectorAll(".ticket-row input[name=ids]").forEach(function (box) {
        if (chosen.has(box.value)) box.checked = true;
      });
      showBulk();
    });
    var update = debounce(function () {
      var url = liveUrl();
      if (!url) return;
      if (paged || chosen.size) {
        liveRefresh(url, "#counts");
        return;
      }
      var known = new Set(rows().map(function (r) { return r.dataset.ticketId; }));
      // One request: the list, with the counts out of band.
      liveRefresh(url, "#ticket-list").then(function () { mark(known); });
    }, 300);
    onEvent(function (frame) { if (isTicketEvent(frame.type)) update(); });
    // The whole row opens its ticket (a middle or modified click opens a new tab as links do);
    // links, buttons and text being selected keep their own meaning.
    body.addEventListener("click", function (e) {
      var row = e.target.closest && e.target.closest(".ticket-row");
      if (!row || e.target.closest("a, button, input, select, label, .pick")) return;
      if (window.getSelection && String(window.getSelection())) return;
      var url = "/tickets/" + row.dataset.ticketId;
      if (e.ctrlKey || e.metaKey || e.shiftKey) window.open(url, "_blank", "noopener");
      else window.location.href = url;
    });
    return {
      move: function (step) {
        var all = rows();
        if (!all.length) return;
        var index = all.findIndex(function (r) { return r.dataset.ticketId === selected; });
        select(all[Math.min(all.length - 1, Math.max(0, index + step))] || all[0]);
      },
      open: function () {
        var row = document.querySelector(".ticket-row.selected");
        if (row) window.location.href = "/tickets/" + row.dataset.ticketId;
      },
    };
  }

  // ---- ticket: live thread and controls, who else is here --------------------------------
  function ticketPage() {
    var root = document.getElementById("ticket-page");
    var ticketId = Number(root.dataset.ticketId);
    var others = new Map();

    function controlsVersion() {
      var controls = document.getElementById("controls");
      return controls ? Number(controls.dataset.version) : 0;
    }
    function seen() {
      var input = document.querySelector('#composer input[name="seen_message_id"]');
      return input ? input.value : "0";
    }
    function shownMessage() {
      var all = document.querySelectorAll("#thread [data-message-id]");
      return all.length ? Number(all[all.length - 1].dataset.messageId) : 0;
    }
    // Unsaved edits in the controls are not thrown away by someone else's change: saving them
    // meets the version check, which shows the current values instead.
    function edited(form) {
      return Array.prototype.some.call(form ? form.elements : [], function (el) {
        if (el.type === "hidden" || el.type === "submit" || el.type === "button") return false;
        if (el.tagName === "SELECT") {
          // A select with no option marked selected shows its first one.
          var initial = Array.prototype.findIndex.call(el.options, function (o) { return o.defaultSelected; });
          return el.selectedIndex !== Math.max(0, initial);
        }
        if (el.type === "checkbox" || el.type === "radio") return el.checked !== el.defaultChecked;
        return el.value !== el.defaultValue;
      });
    }
    // What the socket announced, applied once this page's own requests have settled: their
    // responses bring the new state themselves, so they are not fetched twice (or raced).
    // ``changed`` counts message.updated events (a delivery status, a photo fetched late).
    var announced = { version: 0, message: 0, changed: 0 };
    var asked = { version: 0, message: 0, changed: 0 };
    var inFlight = 0;
    root.addEventListener("htmx:beforeRequest", function () { inFlight += 1; });
    root.addEventListener("htmx:afterRequest", function () {
      inFlight = Math.max(0, inFlight - 1);
      catchUp();
    });
    var catchUp = debounce(function () {
      if (inFlight) return;
      // Each announcement is fetched once: a failed fetch is not retried in a loop.
      if (announced.version > controlsVersion() && announced.version > asked.version &&
          !edited(document.getElementById("controls"))) {
        asked.version = announced.version;
        refresh("/tickets/" + ticketId, "#controls");
      }
      var newMessage = announced.message > shownMessage() && announced.message > asked.message;
      if (newMessage || announced.changed > asked.changed) {
        asked.message = Math.max(asked.message, announced.message);
        asked.changed = announced.changed;
        refresh("/tickets/" + ticketId + "?new_since=" + seen(), "#thread");
      }
    }, 150);

    onEvent(function (frame, data) {
      if ((frame.type === "ticket.updated" || frame.type === "ticket.assigned") && data.ticket &&
          data.ticket.id === ticketId) {
        announced.version = Math.max(announced.version, Number(data.ticket.version) || 0);
        catchUp();
      } else if (frame.type === "message.created" && data.ticket_id === ticketId) {
        announced.message = Math.max(announced.message, Number(data.message_id) || 0);
        announced.version = Math.max(announced.version, Number(data.ticket_version) || 0);
        catchUp();
      } else if (frame.type === "message.updated" && data.ticket_id === ticketId) {
        announced.changed += 1;
        catchUp();
      } else if ((frame.type === "ticket.viewing" || frame.type === "ticket.typing") &&
                 Number(data.ticket_id) === ticketId) {
        // data: {ticket_id, user_id, name}; the sender resends every few seconds while it holds.
        var who = Number(data.user_id);
        if (!who || who === me) return;
        var name = data.name || "";
        // Someone just opened the ticket: say at once that we are here too, rather than at our
        // next beat, so they see everyone who was here first (they answer us the same way).
        if (!others.has(who)) viewing();
        var entry = others.get(who) || { name: name, viewing: 0, typing: 0 };
        entry.name = name || entry.name;
        if (frame.type === "ticket.viewing") entry.viewing = Date.now() + 40000;
        else { entry.typing = Date.now() + 6000; entry.viewing = Math.max(entry.viewing, Date.now() + 40000); }
        others.set(who, entry);
        drawPresence();
      }
    });

    function drawPresence() {
      var box = document.getElementById("presence");
      if (!box) return;
      var now = Date.now();
      box.replaceChildren();
      others.forEach(function (entry, who) {
        if (entry.viewing < now && entry.typing < now) { others.delete(who); return; }
        var typing = entry.typing >= now;
        var chip = document.createElement("span");
        chip.className = "presence-chip" + (typing ? " typing" : "");
        chip.dataset.userId = String(who);
        chip.textContent = (typing ? root.dataset.typingText : root.dataset.viewingText).replace("{name}", entry.name);
        box.appendChild(chip);
      });
    }
    setInterval(drawPresence, 1000);

    function viewing() { if (!document.hidden) send({ type: "viewing", ticket_id: ticketId }); }
    viewing();
    setInterval(viewing, 15000);
    document.addEventListener("visibilitychange", viewing);
    // live.js says when the socket (re)opens: tell the others at once, not at the next beat.
    document.addEventListener("helpdesk:live", function (e) {
      if (e.detail && e.detail.state === "open") viewing();
    });
    // Changes were missed while the socket was away (live.js): fetch the thread and, unless
    // they are being edited, the controls, rather than reloading over an unsaved reply.
    document.addEventListener("helpdesk:resync", function (e) {
      e.preventDefault();
      refresh("/tickets/" + ticketId + "?new_since=" + seen(), "#thread");
      if (!edited(document.getElementById("controls"))) refresh("/tickets/" + ticketId, "#controls");
    });
    var lastTyping = 0;
    document.addEventListener("input", function (e) {
      if (e.target.id !== "reply-body" || Date.now() - lastTyping < 3000) return;
      lastTyping = Date.now();
      send({ type: "typing", ticket_id: ticketId });
    });
    body.addEventListener("htmx:afterSwap", function () {
      var fresh = document.querySelector(".msg.is-new");
      if (fresh && document.getElementById("conflict-alert")) fresh.scrollIntoView({ block: "center" });
    });

    // The thread opens at its newest message, and follows new ones while the reader is there.
    function thread() { return document.getElementById("thread"); }
    function toNewest() { var t = thread(); if (t) t.scrollTop = t.scrollHeight; }
    function atNewest() {
      var t = thread();
      return !t || t.scrollHeight - t.scrollTop - t.clientHeight < 40;
    }
    if (!window.location.hash) toNewest();
    var followThread = true;
    body.addEventListener("htmx:beforeSwap", function (e) {
      if (e.detail.target && e.detail.target.id === "thread") followThread = atNewest();
    });
    body.addEventListener("htmx:afterSwap", function (e) {
      if (e.detail.target && e.detail.target.id === "thread" && followThread) toNewest();
    });

    // The draft is kept in this browser per ticket until it is sent, so leaving the page (or a
    // crash) does not lose it.
    var draftKey = "helpdesk:draft:" + ticketId;
    function replyBox() { return document.getElementById("reply-body"); }
    function storeDraft() {
      var box = replyBox();
      if (!box) return;
      try {
        if (box.value.trim()) window.localStorage.setItem(draftKey, box.value);
        else window.localStorage.removeItem(draftKey);
      } catch (err) { /* storage full or disabled: the draft lives only in the page */ }
    }
    function forgetDraft() {
      try { window.localStorage.removeItem(draftKey); } catch (err) { /* nothing kept */ }
    }
    (function restoreDraft() {
      var box = replyBox();
      var kept = null;
      try { kept = window.localStorage.getItem(draftKey); } catch (err) { kept = null; }
      if (!box || box.value.trim() || !kept) return;
      box.value = kept;
      var note = document.createElement("p");
      note.className = "draft-note";
      note.setAttribute("role", "status");
      note.textContent = root.dataset.draftText || "";
      box.parentNode.insertBefore(note, box);
    })();
    // A macro's status and tags go with the reply unless the operator drops them.
    body.addEventListener("click", function (e) {
      if (!e.target.matches || !e.target.matches("[data-drop-macro]")) return;
      var note = document.getElementById("macro-note");
      if (note) note.replaceChildren();
    });
    // "Reply all": the latest mail's Cc joins the addresses already in the Cc field.
    body.addEventListener("click", function (e) {
      if (!e.target.matches || !e.target.matches("[data-reply-all]")) return;
      var field = document.getElementById("reply-cc");
      if (!field) return;
      var have = field.value.split(/[,;\s]+/).filter(Boolean);
      e.target.dataset.replyAll.split(/,\s*/).forEach(function (a) {
        if (a && have.indexOf(a) < 0) have.push(a);
      });
      field.value = have.join(", ");
    });
    var storeSoon = debounce(storeDraft, 300);
    document.addEventListener("input", function (e) { if (e.target.id === "reply-body") storeSoon(); });
    window.addEventListener("pagehide", storeDraft);
    body.addEventListener("htmx:afterSwap", function (e) {
      var target = e.detail.target;
      if (target && target.id === "reply-body") storeDraft();  // a template was inserted
      var sent = document.getElementById("sent-note");
      if (sent && !sent.dataset.handled) {
        sent.dataset.handled = "1";
        forgetDraft();
        // The reply just sent is the newest message: bring it into view once the thread settles.
        window.requestAnimationFrame(function () {
          toNewest();
          var mine = document.querySelectorAll("#thread [data-message-id]");
          if (mine.length) mine[mine.length - 1].classList.add("just-sent");
        });
      }
    });
    return {
      reply: function () { var box = document.getElementById("reply-body"); if (box) box.focus(); },
      resolve: function () {
        var select = document.getElementById("status-select");
        if (!select) return;
        select.value = "resolved";
        document.getElementById("controls").requestSubmit();
      },
    };
  }

  // ---- supervisor board: load, presence and calls live -----------------------------------
  function boardPage() {
    var root = document.getElementById("board");
    var presence = new Map();
    var calls = new Map();
    // The live refresh keeps as much of the queue as the supervisor chose to show.
    function liveUrl() {
      var el = document.getElementById("board-body");
      return (el && el.dataset.liveUrl) || "/board";
    }
    var update = debounce(function () { refresh(liveUrl(), "#board-body").then(apply); }, 300);

    function apply() {
      document.querySelectorAll("[data-presence-user]").forEach(function (cell) {
        var state = presence.get(Number(cell.dataset.presenceUser)) || "offline";
        cell.textContent = root.dataset["presence" + state.charAt(0).toUpperCase() + state.slice(1)] || state;
        cell.className = "presence-cell presence-" + state;
      });
      document.querySelectorAll("[data-call-user]").forEach(function (cell) {
        var mine = Array.from(calls.values()).find(function (c) {
          return c.operator_id === Number(cell.dataset.callUser) && c.state === "answered";
        });
        cell.textContent = mine ? (mine.from_display || mine.from || "") : "—";
      });
      var list = document.getElementById("live-calls");
      if (!list) return;
      list.replaceChildren();
      calls.forEach(function (call) {
        var li = document.createElement("li");
        li.className = "call-" + call.state;
        li.textContent = (call.state === "ringing" ? root.dataset.callRinging : root.dataset.callAnswered) +
          " · " + (call.from_display || call.from || "") + (call.queue ? " · " + call.queue : "");
        list.appendChild(li);
      });
      if (!calls.size) {
        var empty = document.createElement("li");
        empty.className = "empty";
        empty.textContent = list.dataset.empty;
        list.appendChild(empty);
      }
    }
    function setPresence(userId, status) { presence.set(Number(userId), status || "offline"); }
    function track(call) {
      if (!call || call.id === undefined) return;
      if (call.state === "ended") calls.delete(call.id); else calls.set(call.id, call);
    }

    onEvent(function (frame, data) {
      if (isTicketEvent(frame.type)) update();
      if (frame.type === "presence.changed") { setPresence(data.user_id, data.status); apply(); }
      if (frame.type.indexOf("call.") === 0 && data.call) {
        var call = data.call;
        if (frame.type === "call.missed") call = Object.assign({}, call, { state: "ended" });
        if (frame.type === "call.answered" && data.operator_id !== undefined && data.operator_id !== null) {
          call = Object.assign({}, call, { state: "answered", operator_id: data.operator_id });
        }
        track(call);
        apply();
      }
    });
    // The server rendered presence and calls in progress; events keep them current from here.
    var state = document.getElementById("board-state");
    var initial = {};
    try { initial = JSON.parse(state ? state.textContent : "{}") || {}; } catch (err) { initial = {}; }
    (initial.presence || []).forEach(function (p) { setPresence(p.user_id, p.status); });
    (initial.calls || []).forEach(track);
    return {};
  }

  // ---- CSV import: a file over the limit is refused here, with the page's reason ----------
  function importPage() {
    var form = document.getElementById("import-form");
    if (!form) return {};
    var input = form.querySelector("input[type=file]");
    input.addEventListener("change", function () {
      var file = input.files && input.files[0];
      input.setCustomValidity(file && file.size > Number(form.dataset.maxBytes) ? form.dataset.tooLarge : "");
      input.reportValidity();
    });
    return {};
  }

  var current = {};
  if (page === "import") current = importPage();
  else if (page === "inbox") current = inboxPage();
  else if (page === "ticket") current = ticketPage();
  else if (page === "board") current = boardPage();

  // ---- the live connection's state (live.js) ----------------------------------------------
  // Say so when updates stop: at once when the session was ended (signing in again is the only
  // way on), after a few seconds when the socket is away, since most reconnects take less.
  (function liveStatus() {
    var box = document.getElementById("live-status");
    if (!box) return;
    var text = box.querySelector(".live-status-text");
    var login = box.querySelector(".live-status-login");
    var later = null;
    function show(message, signIn) {
      text.textContent = message;
      login.hidden = !signIn;
      box.hidden = false;
    }
    document.addEventListener("helpdesk:live", function (e) {
      var state = e.detail && e.detail.state;
      clearTimeout(later);
      if (state === "open") box.hidden = true;
      else if (state === "signed-out") show(box.dataset.signedOut, true);
      else later = setTimeout(function () { show(box.dataset.closed, false); }, 3000);
    });
  })();

  // ---- keyboard shortcuts -----------------------------------------------------------------
  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) {
      if (e.key === "Escape") t.blur();
      return;
    }
    var help = document.getElementById("shortcut-help");
    if (help && help.open) return;
    // Enter keeps its meaning on links and buttons; it opens a ticket only from a selected row.
    if (e.key === "Enter" && !(t === body || (t.classList && t.classList.contains("ticket-row")))) return;
    var act = {
      j: function () { current.move && current.move(1); },
      k: function () { current.move && current.move(-1); },
      o: function () { current.open && current.open(); },
      Enter: function () { current.open && current.open(); },
      r: function () { current.reply && current.reply(); },
      e: function () { current.resolve && current.resolve(); },
      "/": function () {
        var box = document.getElementById("search-box") || document.getElementById("customer-q");
        if (box) box.focus();
      },
      "?": function () { if (help) help.showModal(); },
    }[e.key];
    if (act) {
      e.preventDefault();
      act();
    }
  });
})();
