"""Every table model, imported in one place so Alembic and create_all see them all."""

from helpdesk.access.models import IpRule
from helpdesk.audit.models import AuditLog
from helpdesk.auth.models import User
from helpdesk.calls.models import Call, CallEvent, CtiSettings
from helpdesk.channels.models import ChatVisitor, ImapCursor, MediaFetch
from helpdesk.customers.models import (
    Customer,
    CustomerIdentity,
    Order,
    OrderItem,
    RfmBoundary,
)
from helpdesk.db import Counter
from helpdesk.outbox.models import OutboxItem
from helpdesk.realtime.models import Event, Presence, PresenceConnection
from helpdesk.receipts.models import DeliveryReceipt
from helpdesk.replies.models import ReplyTemplate
from helpdesk.routing.models import Inbox, InboxMember
from helpdesk.search.models import SearchEntry
from helpdesk.tickets.models import (
    Attachment,
    Message,
    SavedView,
    Tag,
    Ticket,
    TicketCount,
    TicketRead,
    TicketTag,
)

__all__ = [
    "Attachment", "AuditLog", "Call", "CallEvent", "ChatVisitor", "Counter", "CtiSettings",
    "Customer", "CustomerIdentity", "DeliveryReceipt", "Event", "ImapCursor", "Inbox",
    "InboxMember", "IpRule", "MediaFetch", "Message", "Order", "OrderItem", "OutboxItem", "Presence",
    "PresenceConnection", "ReplyTemplate", "RfmBoundary", "SavedView", "SearchEntry", "Tag",
    "Ticket",
    "TicketCount", "TicketRead", "TicketTag", "User",
]
