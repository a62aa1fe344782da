/*
 * The helpdesk's live connection: one WebSocket to /ws, signed in by the session cookie.
 *
 * - Every frame from the server is dispatched on `document` as
 *   `new CustomEvent("helpdesk:event", {detail: frame})`: events ({seq, type, at, data}) and
 *   momentary frames (ticket.viewing, ticket.typing; no seq).
 * - The last seq seen is kept in sessionStorage; after a drop it reconnects with backoff and
 *   resumes from there, so nothing is missed or repeated (also across page reloads in a tab).
 * - When the events after that seq are no longer kept (the tab slept past the retention time),
 *   the server answers {type: "resync", data: {after}}: the seq goes on from `after`, and a
 *   cancelable "helpdesk:resync" event is dispatched on `document`; unless a page handles it
 *   (preventDefault, then refetches what it shows), the page is reloaded.
 * - Presence: "online" while the tab is visible, "away" after it has been hidden a while,
 *   repeated as a heartbeat.
 * - `window.helpdeskLive.send(obj)` sends a frame, e.g. {type: "viewing", ticket_id: 42};
 *   `.viewing(id)`, `.typing(id)` and `.setStatus("online"|"away"|"offline")` are shorthands.
 *
 * Options on the script tag: data-url (default: /ws on this host), data-autostart="false".
 * "helpdesk:live" events on `document` tell the state: {detail: {state: "open"|"closed"|"signed-out"}}.
 */
(function () {
  "use strict";

  var SEQ_KEY = "helpdesk.live.lastSeq";
  var HEARTBEAT_MS = 30000;
  var AWAY_AFTER_MS = 120000;
  var SILENCE_MS = 75000; // the server pings every 25 s: this long without a frame means it is gone
  var BACKOFF_MIN_MS = 500;
  var BACKOFF_MAX_MS = 30000;

  var script = document.currentScript;
  var options = (script && script.dataset) || {};
  var url = options.url || (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";

  var socket = null;
  var stopped = true;
  var attempts = 0;
  var reconnectTimer = null;
  var heartbeatTimer = null;
  var silenceTimer = null;
  var awayTimer = null;
  var status = document.hidden ? "away" : "online";

  function lastSeq() {
    var stored = null;
    try {
      stored = sessionStorage.getItem(SEQ_KEY);
    } catch (e) { /* storage may be off: resume from the present */ }
    var seq = stored === null ? NaN : parseInt(stored, 10);
    return isNaN(seq) ? null : seq;
  }

  function rememberSeq(seq) {
    try {
      sessionStorage.setItem(SEQ_KEY, String(seq));
    } catch (e) { /* see lastSeq */ }
  }

  function announce(state) {
    document.dispatchEvent(new CustomEvent("helpdesk:live", {detail: {state: state}}));
  }

  function send(obj) {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      return false;
    }
    socket.send(JSON.stringify(obj));
    return true;
  }

  function watchSilence() {
    clearTimeout(silenceTimer);
    silenceTimer = setTimeout(function () {
      if (socket) {
        socket.close(4000, "server silent");
      }
    }, SILENCE_MS);
  }

  function onFrame(message) {
    watchSilence();
    var frame;
    try {
      frame = JSON.parse(message.data);
    } catch (e) {
      return;
    }
    if (frame.type === "ping") {
      send({type: "pong"});
      return;
    }
    if (frame.type === "pong") {
      return;
    }
    if (typeof frame.seq === "number") {
      rememberSeq(frame.seq); // the server sends each seq once, in order: resume from here
    }
    if (frame.type === "resync") {
      resync(frame);
      return;
    }
    document.dispatchEvent(new CustomEvent("helpdesk:event", {detail: frame}));
  }

  // What the page shows may be missing changes the server no longer has as events.
  function resync(frame) {
    var after = frame.data && frame.data.after;
    if (typeof after === "number") {
      rememberSeq(after); // before reloading, so the reloaded page does not resync again
    }
    var event = new CustomEvent("helpdesk:resync", {detail: frame, cancelable: true});
    if (document.dispatchEvent(event)) {
      location.reload();
    }
  }

  function onOpen() {
    attempts = 0;
    // The first frame says where to start: after the last seq seen, or from now on.
    send({type: "resume", after: lastSeq()});
    send({type: "presence", status: status});
    clearInterval(heartbeatTimer);
    heartbeatTimer = setInterval(function () {
      send({type: "presence", status: status});
    }, HEARTBEAT_MS);
    watchSilence();
    announce("open");
  }

  function onClose(event) {
    clearInterval(heartbeatTimer);
    clearTimeout(silenceTimer);
    socket = null;
    if (event.code === 4401 || event.code === 4403) {
      stopped = true; // signed out or disabled: reconnecting would not help
      announce("signed-out");
      return;
    }
    announce("closed");
    if (!stopped) {
      scheduleReconnect();
    }
  }

  function scheduleReconnect() {
    clearTimeout(reconnectTimer);
    var ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, attempts));
    attempts += 1;
    var delay = ceiling / 2 + Math.random() * ceiling / 2; // jitter: not everyone at once
    reconnectTimer = setTimeout(connect, delay);
  }

  function connect() {
    stopped = false;
    if (socket) {
      return;
    }
    try {
      socket = new WebSocket(url);
    } catch (e) {
      socket = null;
      scheduleReconnect();
      return;
    }
    socket.onopen = onOpen;
    socket.onmessage = onFrame;
    socket.onclose = onClose;
  }

  function stop() {
    stopped = true;
    clearTimeout(reconnectTimer);
    if (socket) {
      socket.close(1000, "bye");
    }
  }

  function setStatus(value) {
    status = value;
    return send({type: "presence", status: value});
  }

  document.addEventListener("visibilitychange", function () {
    clearTimeout(awayTimer);
    if (document.hidden) {
      awayTimer = setTimeout(function () { setStatus("away"); }, AWAY_AFTER_MS);
    } else if (status !== "online") {
      setStatus("online");
    }
  });

  // Back online after the network dropped: do not wait out the backoff.
  window.addEventListener("online", function () {
    if (!stopped && !socket) {
      attempts = 0;
      connect();
    }
  });

  window.helpdeskLive = {
    send: send,
    viewing: function (ticketId) { return send({type: "viewing", ticket_id: ticketId}); },
    typing: function (ticketId) { return send({type: "typing", ticket_id: ticketId}); },
    setStatus: setStatus,
    lastSeq: lastSeq,
    start: connect,
    stop: stop
  };

  if (options.autostart !== "false") {
    connect();
  }
})();
