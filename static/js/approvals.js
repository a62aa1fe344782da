// Send approval, live: the approval queue and a ticket's held or returned replies follow the
// socket (message.approval_requested, message.approved, message.rejected).
(function () {
  "use strict";
  var onEvent = window.helpdeskOnEvent;
  var page = document.body && document.body.dataset.page;
  if (!onEvent || (page !== "approvals" && page !== "ticket")) return;

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
