"""SMS and WhatsApp replies through Twilio's REST API: the outbox senders for ``reply.sms`` and
for ``reply.whatsapp`` on threads that did not come in through Meta's Cloud API.

The reply goes to the customer's phone, from the number of the ticket's inbox (the number they
wrote to) or else ``TWILIO_SMS_FROM`` / ``TWILIO_WHATSAPP_FROM``. Twilio refusing a message for
good (a 4xx: an invalid or unreachable number, a blocked sender) fails it at once with Twilio's
reason; 429, 5xx and an unreachable Twilio are retried by the outbox.
"""

from typing import TYPE_CHECKING

import httpx
from twilio.base.exceptions import TwilioRestException

from helpdesk import normalize
from helpdesk.config import Settings
from helpdesk.outbox.service import OutboundContext, Sender, SenderRegistry, SendError
from telephony import twilio_rest

if TYPE_CHECKING:
    from twilio.rest import Client  # see twilio_rest.rest_client

MAX_BODY = 1600  # characters Twilio accepts in one message
WHATSAPP = "whatsapp:"
NOT_SET_UP = "Twilio is not set up (HELPDESK_TWILIO_ACCOUNT_SID, HELPDESK_TWILIO_AUTH_TOKEN)"


def register_senders(registry: SenderRegistry, settings: Settings) -> None:
    """Send SMS, and WhatsApp not answered through the Cloud API, with Twilio when configured."""
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        registry.refuse("reply.sms", NOT_SET_UP)
        if registry.refusal("reply.whatsapp") is not None:
            registry.refuse("reply.whatsapp", "WhatsApp is not set up (Meta's access token or Twilio)")
        return
    sender = make_sender(settings)
    registry.register("reply.sms", sender)
    registry.register("reply.whatsapp", sender)  # the fallback after the Cloud API's own threads


def make_sender(settings: Settings) -> Sender:
    """The sender, with one REST client for the process."""
    client = twilio_rest.rest_client(settings)

    async def send(context: OutboundContext) -> str | None:
        whatsapp = context.kind == "reply.whatsapp"
        to, from_ = _recipient(context, whatsapp=whatsapp), _sender_number(context, whatsapp=whatsapp)
        sids = [await _send_one(client, to=to, from_=from_, body=part)
                for part in _parts(context.body_text)]
        return sids[0] if sids else None

    return send


def _recipient(context: OutboundContext, *, whatsapp: bool) -> str:
    phones = context.identities.get("phone", [])
    if not phones:
        raise SendError("the customer has no phone number", permanent=True)
    return f"{WHATSAPP}{phones[0]}" if whatsapp else phones[0]


def _sender_number(context: OutboundContext, *, whatsapp: bool) -> str:
    settings = context.settings
    configured = settings.twilio_whatsapp_from if whatsapp else settings.twilio_sms_from
    number = (configured or context.inbox_phone) if whatsapp else (context.inbox_phone or configured)
    if not number:
        setting = "HELPDESK_TWILIO_WHATSAPP_FROM" if whatsapp else "HELPDESK_TWILIO_SMS_FROM"
        raise SendError(f"no number to send from: give the inbox a phone number or set {setting}",
                        permanent=True)
    number = number.removeprefix(WHATSAPP)
    number = normalize.phone(number, settings.default_region) or number  # inboxes keep it as typed
    return f"{WHATSAPP}{number}" if whatsapp else number


def _parts(body: str) -> list[str]:
    """The text in pieces Twilio accepts, in order (a long reply becomes several messages)."""
    return [body[i:i + MAX_BODY] for i in range(0, len(body), MAX_BODY)] or [""]


async def _send_one(client: "Client", *, to: str, from_: str, body: str) -> str:
    try:
        return await twilio_rest.send_sms(client, to=to, from_=from_, body=body)
    except TwilioRestException as exc:
        permanent = 400 <= exc.status < 500 and exc.status != 429
        raise SendError(f"Twilio answered {exc.status} (code {exc.code}): {exc.msg}",
                        permanent=permanent) from exc
    except httpx.HTTPError as exc:
        raise SendError(f"Twilio could not be reached: {type(exc).__name__}") from exc
