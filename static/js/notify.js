// Desktop and sound notifications for new tickets and incoming calls: off until the user turns
// them on (on /me), remembered per user in this browser. Texts come from the page (translated).
(function () {
  "use strict";

  var body = document.body;
  var userId = body.dataset.userId;
  if (!userId) return;
  var key = "helpdesk:notify:" + userId;

  function choices() {
    try { return JSON.parse(window.localStorage.getItem(key) || "{}") || {}; } catch (err) { return {}; }
  }
  function remember(value) {
    try { window.localStorage.setItem(key, JSON.stringify(value)); } catch (err) { /* not kept */ }
  }

  // The preferences page: two checkboxes, applied at once.
  var form = document.getElementById("notify-form");
  if (form) {
    var saved = choices();
    form.elements.desktop.checked = !!saved.desktop;
    form.elements.sound.checked = !!saved.sound;
    var status = document.getElementById("notify-status");
    form.addEventListener("change", function () {
      var wanted = { desktop: form.elements.desktop.checked, sound: form.elements.sound.checked };
      remember(wanted);
      if (wanted.desktop && window.Notification && Notification.permission === "default") {
        Notification.requestPermission().then(say);
      } else {
        say();
      }
    });
    var say = function () {
      if (!status) return;
      var denied = form.elements.desktop.checked && window.Notification &&
        Notification.permission === "denied";
      status.textContent = denied ? status.dataset.denied : status.dataset.saved;
    };
  }

  var audio = null;
  function beep(times) {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    try {
      audio = audio || new Context();
      for (var i = 0; i < times; i += 1) {
        var tone = audio.createOscillator();
        var gain = audio.createGain();
        tone.frequency.value = 880;
        gain.gain.value = 0.08;
        tone.connect(gain).connect(audio.destination);
        tone.start(audio.currentTime + i * 0.3);
        tone.stop(audio.currentTime + i * 0.3 + 0.15);
      }
    } catch (err) { /* the browser refused sound until the page is clicked */ }
  }
  function show(title, text, url) {
    if (!window.Notification || Notification.permission !== "granted") return;
    try {
      var note = new Notification(title, { body: text || "", tag: url || title });
      note.onclick = function () { window.focus(); if (url) window.location.href = url; };
    } catch (err) { /* notifications unavailable here */ }
  }

  // A colleague named this user in a note: always a toast, and an alert if they asked for them.
  function mentionedHere(data) {
    var text = (body.dataset.notifyMention || "").replace("{name}", data.by || "")
      .replace("{number}", String(data.ticket_number || ""));
    var box = document.getElementById("toasts");
    if (box) {
      var toast = document.createElement("div");
      toast.className = "toast toast-mention";
      var link = document.createElement("a");
      link.href = "/tickets/" + data.ticket_id + "#message-" + data.message_id;
      link.textContent = text;
      toast.appendChild(link);
      box.appendChild(toast);
    }
    var wanted = choices();
    if (wanted.desktop) show(text, data.preview || "", "/tickets/" + data.ticket_id);
    if (wanted.sound) beep(2);
  }

  document.addEventListener("helpdesk:event", function (e) {
    var frame = e.detail || {};
    var data = frame.data || {};
    if (frame.type === "ticket.mentioned") { mentionedHere(data); return; }
    var wanted = choices();
    if (!wanted.desktop && !wanted.sound) return;
    if (frame.type === "ticket.created" && data.ticket) {
      if (wanted.desktop) show(body.dataset.notifyTicket || "", data.ticket.subject, "/tickets/" + data.ticket.id);
      if (wanted.sound) beep(1);
    } else if (frame.type === "call.ringing") {
      var caller = data.caller || {};
      if (wanted.desktop) show(body.dataset.notifyCall || "", caller.name || caller.display || "", null);
      if (wanted.sound) beep(3);
    }
  });
})();
