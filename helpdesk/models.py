"""Every table model, imported in one place so Alembic and create_all see them all."""

from helpdesk.access.models import IpRule
from helpdesk.approval.models import ApprovalPolicy
from helpdesk.assignment.models import AssignmentPolicy
from helpdesk.audit.models import AuditLog
from helpdesk.auth.models import AuthSession, RecoveryCode, RolePolicy, User
from helpdesk.calls.models import Call, CallEvent, CallTransfer, WrapupState
from helpdesk.calls.settings_models import CtiSettings, InboxVoice
from helpdesk.channels.models import ChatVisitor, ImapCursor, MediaFetch
from helpdesk.customers.models import (
    Customer,
    CustomerIdentity,
    Order,
    OrderItem,
    RfmBoundary,
)
from helpdesk.history.models import TicketHistory
from helpdesk.imports.models import ImportRun
from helpdesk.inboxes.models import Inbox, InboxMember
from helpdesk.outbox.models import OutboxItem
from helpdesk.realtime.models import Event, Presence, PresenceConnection
from helpdesk.receipts.models import DeliveryReceipt
from helpdesk.replies.models import EmailSignature, ReplyTemplate
from helpdesk.reports.models import (
    ReportBacklog,
    ReportHistogram,
    ReportInboxDay,
    ReportOperator,
    ReportOperatorDay,
    ReportSample,
    ReportTicket,
)
from helpdesk.search.models import SearchEntry
from helpdesk.sla.models import SlaSettings
from helpdesk.storage.counters import Counter
from helpdesk.tickets.models import (
    Attachment,
    Message,
    SavedView,
    Tag,
    Ticket,
    TicketCount,
    TicketPace,
    TicketRead,
    TicketTag,
)

__all__ = [
    "ApprovalPolicy", "AssignmentPolicy", "Attachment", "AuditLog", "AuthSession", "Call", "CallEvent",
    "CallTransfer", "ChatVisitor", "Counter", "CtiSettings", "Customer", "CustomerIdentity",
    "DeliveryReceipt", "EmailSignature", "Event", "ImapCursor", "ImportRun", "Inbox", "InboxMember",
    "InboxVoice", "IpRule",
    "MediaFetch", "Message", "Order", "OrderItem", "OutboxItem", "Presence", "PresenceConnection",
    "RecoveryCode", "ReplyTemplate", "ReportBacklog", "ReportHistogram", "ReportInboxDay",
    "ReportOperator", "ReportOperatorDay", "ReportSample", "ReportTicket", "RfmBoundary",
    "RolePolicy", "SavedView", "SearchEntry", "SlaSettings", "Tag", "Ticket", "TicketCount",
    "TicketHistory", "TicketPace", "TicketRead", "TicketTag", "User", "WrapupState",
]
