"""Twilio's REST API over the app's httpx: placing calls from the browser phone, sending SMS and
WhatsApp replies.
"""

import logging
import re
from typing import TYPE_CHECKING

import httpx
from twilio.base import values
from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.twiml.voice_response import VoiceResponse

from helpdesk.calls import outbound as call_outbound
from helpdesk.config import Settings
from helpdesk.errors import NotFound
from telephony.twilio_request import url_of

if TYPE_CHECKING:  # imported when a client is made: 6.5 MiB in every worker that never uses it
    from twilio.rest import Client


class HttpxTwilioClient(AsyncHttpClient):
    """The twilio library's async HTTP client slot, filled with httpx and an optional base URL.

    With ``base`` set, requests for ``https://*.twilio.com`` go to ``base`` instead.
    """

    def __init__(self, base: str | None = None, timeout: float = 10.0) -> None:
        super().__init__(logger=logging.getLogger("telephony.twilio"), is_async=True,
                         timeout=timeout)
        self.base = base.rstrip("/") if base else None

    async def request(
        self, method: str, uri: str, params: dict[str, object] | None = None,
        data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None, timeout: float | None = None,  # noqa: ASYNC109
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        """Send one request and hand back the library's response type."""
        if self.base:
            uri = re.sub(r"^https://[a-z0-9.-]+\.twilio\.com", self.base, uri)
        async with httpx.AsyncClient(timeout=timeout or self.timeout,
                                     follow_redirects=allow_redirects) as client:
            reply = await client.request(method, uri, params=params,  # type: ignore[arg-type]
                                         data=data, headers=headers, auth=auth)
        return TwilioResponse(reply.status_code, reply.text, reply.headers)


def rest_client(settings: Settings) -> "Client":
    """A Twilio REST client for the configured account, pointed at ``TWILIO_API_BASE`` if set."""
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        raise NotFound("Twilio is not configured")
    from twilio.rest import Client

    return Client(settings.twilio_account_sid, settings.twilio_auth_token,
                  http_client=HttpxTwilioClient(settings.twilio_api_base))


async def send_sms(
    client: "Client", *, to: str, from_: str, body: str, status_callback: str | None = None
) -> str:
    """Send an SMS, or a WhatsApp message when the numbers start ``whatsapp:``; its MessageSid.

    Raises ``TwilioRestException`` when Twilio refuses and ``httpx.HTTPError`` when unreachable.
    """
    message = await client.messages.create_async(
        to=to, from_=from_, body=body,
        status_callback=status_callback if status_callback else values.unset)
    return str(message.sid)


def dialer(settings: Settings) -> call_outbound.Dialer:
    """Click-to-call through the REST API: ring the operator's browser, then bridge the customer."""

    async def dial(*, to: str, caller_id: str, identity: str) -> str:
        bridge = VoiceResponse()
        bridge.dial(caller_id=caller_id, answer_on_bridge=True).number(to)
        try:
            call = await rest_client(settings).calls.create_async(
                to=f"client:{identity}", from_=caller_id, twiml=str(bridge),
                status_callback=url_of(settings, "/telephony/twilio/status"),
                status_callback_event=["initiated", "ringing", "answered", "completed"])
        except TwilioRestException as exc:
            raise call_outbound.DialFailed(f"Twilio refused the call: {exc.msg}") from exc
        except httpx.HTTPError as exc:
            raise call_outbound.DialFailed("Twilio could not be reached") from exc
        return str(call.sid)

    return dial
