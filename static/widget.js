/* Helpdesk web chat widget. Embed with one tag:
 *   <script src="https://helpdesk.example/static/widget.js" data-helpdesk="https://helpdesk.example"></script>
 * No framework, no build step. The visitor token lives in localStorage so a reload or a lost
 * connection resumes the same conversation; unsent messages are resent with the same client id
 * (the server ignores repeats).
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var base = ((script && script.getAttribute("data-helpdesk")) || location.origin).replace(/\/+$/, "");
  var KEY = "helpdesk-chat:" + base;
  var state = load();
  state.after = 0;  // a fresh page shows the whole conversation; a reconnect only what it missed
  var socket = null, retry = 0, pending = {}, shown = {}, typingTimer = null, resendTimer = null;

  function load() {
    try { return JSON.parse(localStorage.getItem(KEY)) || {}; } catch (e) { return {}; }
  }
  function save() {
    try { localStorage.setItem(KEY, JSON.stringify({ token: state.token })); } catch (e) { /* private mode */ }
  }
  function uid() {
    return (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2));
  }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var k in attrs || {}) node.setAttribute(k, attrs[k]);
    if (text) node.textContent = text;
    return node;
  }

  // ---- the box, in a shadow root so the shop's CSS and ours never meet -------------------
  var host = el("div", { id: "helpdesk-chat" });
  var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  var style = el("style");
  style.textContent = [
    ":host{all:initial}[hidden]{display:none!important}",
    ".box{position:fixed;right:16px;bottom:16px;width:320px;max-height:70vh;display:flex;flex-direction:column;",
    "font:14px/1.5 system-ui,sans-serif;background:#fff;border:1px solid #ccd;border-radius:10px;",
    "box-shadow:0 4px 18px rgba(0,0,0,.15);z-index:2147483000;color:#222}",
    ".head{padding:8px 12px;background:#2b5cab;color:#fff;border-radius:10px 10px 0 0;font-weight:600}",
    ".log{flex:1;overflow-y:auto;padding:8px;min-height:160px}",
    ".msg{margin:4px 0;padding:6px 10px;border-radius:8px;max-width:85%;white-space:pre-wrap;word-wrap:break-word}",
    ".in{background:#e8f0fe;margin-left:auto}.out{background:#f1f1f1}.sending{opacity:.6}",
    ".who{font-size:11px;color:#666}.note{font-size:12px;color:#555;padding:4px 8px}",
    "form{display:flex;border-top:1px solid #dde}textarea,input{flex:1;border:0;padding:8px;font:inherit;resize:none}",
    "button{border:0;background:#2b5cab;color:#fff;padding:0 12px;cursor:pointer}"
  ].join("");
  var box = el("div", { "class": "box", role: "dialog", "aria-label": "チャット" });
  var head = el("div", { "class": "head" }, "お問い合わせチャット");
  var log = el("div", { "class": "log", "aria-live": "polite" });
  var typing = el("div", { "class": "note", hidden: "" }, "");
  var notice = el("div", { "class": "note", role: "status", hidden: "" }, "");
  var away = el("form", { "class": "away", hidden: "" });
  var awayText = el("div", { "class": "note" }, "ただいま担当者が不在です。メールアドレスをご入力いただければ、メールでご返信します。");
  var email = el("input", { type: "email", name: "email", placeholder: "メールアドレス", required: "" });
  var form = el("form", { "class": "send" });
  var input = el("textarea", { name: "text", rows: "2", placeholder: "メッセージを入力", "aria-label": "メッセージ" });
  away.appendChild(email);
  away.appendChild(el("button", { type: "submit" }, "登録"));
  form.appendChild(input);
  form.appendChild(el("button", { type: "submit" }, "送信"));
  box.appendChild(head); box.appendChild(log); box.appendChild(typing); box.appendChild(notice);
  box.appendChild(awayText); box.appendChild(away); box.appendChild(form);
  awayText.hidden = true;
  root.appendChild(style);
  root.appendChild(box);

  function render(m) {
    var key = m.id ? "id" + m.id : "c" + m.client_id;
    var node = shown[key] || (m.client_id && shown["c" + m.client_id]);
    if (!node) {
      node = el("div", { "class": "msg " + (m.direction === "out" ? "out" : "in") });
      if (m.direction === "out" && m.author) node.appendChild(el("div", { "class": "who" }, m.author));
      node.appendChild(el("div", { "class": "text" }, m.text));
      log.appendChild(node);
    }
    node.classList.toggle("sending", !m.id);
    if (m.id) node.setAttribute("data-id", m.id);
    if (m.client_id) shown["c" + m.client_id] = node;
    if (m.id) shown["id" + m.id] = node;
    log.scrollTop = log.scrollHeight;
  }

  function send(frame) {
    if (socket && socket.readyState === 1) { socket.send(JSON.stringify(frame)); return true; }
    return false;
  }

  function connect() {
    var url = base.replace(/^http/, "ws") + "/chat/ws" + (state.token ? "?token=" + encodeURIComponent(state.token) : "");
    socket = new WebSocket(url);
    socket.onopen = function () { retry = 0; };
    socket.onmessage = function (event) {
      var frame = JSON.parse(event.data);
      if (frame.type === "welcome") {
        state.token = frame.token; save();
        var nobody = !frame.operators_online && !frame.email;
        away.hidden = awayText.hidden = !nobody;
        send({ type: "resume", after: state.after || 0 });
        for (var id in pending) send(pending[id]);  // resend what the last socket did not confirm
      } else if (frame.type === "message") {
        if (frame.client_id) delete pending[frame.client_id];
        state.after = Math.max(state.after || 0, frame.id);
        typing.hidden = true;
        render(frame);
      } else if (frame.type === "typing") {
        typing.textContent = (frame.author || "担当者") + "が入力中…";
        typing.hidden = false;
        clearTimeout(typingTimer);
        typingTimer = setTimeout(function () { typing.hidden = true; }, 6000);
      } else if (frame.type === "error" && frame.retry_after) {
        // Sent faster than the shop allows: say so, and send what is waiting once allowed.
        notice.textContent = "送信が続いたため、" + frame.retry_after + " 秒後に送り直します。";
        notice.hidden = false;
        clearTimeout(resendTimer);
        resendTimer = setTimeout(function () {
          notice.hidden = true;
          for (var id in pending) send(pending[id]);
        }, frame.retry_after * 1000);
      } else if (frame.type === "email_saved") {
        away.hidden = true;
        awayText.textContent = frame.email + " 宛にご返信します。";
      }
    };
    socket.onclose = function (event) {
      if (event.code === 4403) { state.token = null; save(); }  // a token this server never issued
      retry = Math.min(retry + 1, 6);
      setTimeout(connect, 500 * Math.pow(2, retry - 1));
    };
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    var frame = { type: "message", text: text, client_id: uid() };
    pending[frame.client_id] = frame;
    render({ direction: "in", text: text, client_id: frame.client_id });
    send(frame);
    input.value = "";
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit"));
    }
  });
  away.addEventListener("submit", function (event) {
    event.preventDefault();
    send({ type: "email", email: email.value });
  });
  setInterval(function () { send({ type: "ping" }); }, 30000);

  function start() { document.body.appendChild(host); connect(); }
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
  window.HelpdeskChat = { root: root };
})();
