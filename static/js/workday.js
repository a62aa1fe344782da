// Assignment, SLA and send approval, live: the approval queue and a ticket's held or returned
// replies follow the socket (message.approval_requested, message.approved, message.rejected);
// the inbox list and the board follow breaches (ticket.sla_breached).
(function () {
  "use strict";
  var onEvent = window.helpdeskOnEvent;
  var page = document.body && document.body.dataset.page;
  if (!onEvent || ["approvals", "ticket", "inbox", "board"].indexOf(page) < 0) return;

  function refresh(url, target) {
    var el = document.querySelector(target);
    if (window.htmx && el) window.htmx.ajax("GET", url, { source: el, target: el, swap: "outerHTML" });
  }

  function isOwnTicket(data) {
    var root = document.getElementById("ticket-page");
    var id = data.ticket_id !== undefined ? data.ticket_id : (data.ticket && data.ticket.id);
    return root && Number(root.dataset.ticketId) === Number(id);
  }

  onEvent(function (frame, data) {
    if (frame.type === "ticket.sla_breached" && page === "inbox") {
      var main = document.getElementById("inbox-main");
      if (main && !document.querySelector(".more-row ~ tr, #ticket-rows tr.more-row + tr")) {
        refresh(main.dataset.liveUrl, "#ticket-list");
      }
      return;
    }
    if (frame.type === "ticket.sla_breached" && page === "board") {
      refresh("/board", "#sla-risk");
      return;
    }
    if (page === "ticket" && (frame.type === "ticket.assigned" || frame.type === "ticket.sla_breached") &&
        isOwnTicket(data)) {
      refresh(location.pathname, "#ticket-history");
      return;
    }
    if (frame.type !== "message.approval_requested" && frame.type !== "message.approved" &&
        frame.type !== "message.rejected") return;
    if (page === "approvals") {
      refresh("/approvals", "#approval-queue");
      return;
    }
    if (isOwnTicket(data)) {
      refresh(location.pathname, "#approval-notes");
      setTimeout(function () { refresh(location.pathname, "#thread"); }, 50);
      setTimeout(function () { refresh(location.pathname, "#ticket-history"); }, 100);
    }
  });
})();
