"""Twilio: the voice webhook (TwiML), call status callbacks, SMS / WhatsApp inbound, the browser
phone's access token, and the REST client that places calls and sends replies.

Every webhook is verified with the twilio library's ``RequestValidator`` over ``PUBLIC_URL`` + path
(+ query) and the raw form, duplicate keys kept, before anything is parsed or stored.
"""

import logging
import re
from email.utils import parsedate_to_datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

import httpx
from fastapi import APIRouter, Depends, Request, Response
from starlette.datastructures import ImmutableMultiDict
from twilio.base import values
from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant
from twilio.request_validator import (
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from helpdesk import normalize
from helpdesk.auth.dependencies import CurrentUser
from helpdesk.auth.models import User
from helpdesk.calls import service as calls
from helpdesk.calls.models import CallDirection, CallState, Routed
from helpdesk.config import Settings, SettingsDep
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.errors import BadInput, Forbidden, NotFound
from helpdesk.inboxes import service as inbox_service
from helpdesk.realtime import service as events
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import Channel, InboundMessage, Sender
from telephony import twiml

router = APIRouter(tags=["telephony"])
PROVIDER = "twilio"
TERMINAL = {"completed", "busy", "no-answer", "failed", "canceled"}
PROGRESS = {"queued", "initiated", "ringing"}
MAX_FIELDS = 200
TOKEN_TTL = 3600
XML = "text/xml"


# ---- verification -------------------------------------------------------------------------


async def signed_form(request: Request, settings: SettingsDep) -> ImmutableMultiDict[str, str]:
    """The form Twilio posted, once its signature checks out; 404 when Twilio is not set up."""
    token = settings.twilio_auth_token
    if not token:
        raise NotFound("Twilio is not configured")
    signature = request.headers.get("X-Twilio-Signature")
    if not signature:
        raise Forbidden("missing Twilio signature")
    try:
        pairs = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True,
                          max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise Forbidden("invalid Twilio signature") from None
    form = ImmutableMultiDict(pairs)
    url = settings.public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
    if not RequestValidator(token).validate(url, form, signature, algorithm):
        raise Forbidden("invalid Twilio signature")
    return form


TwilioForm = Annotated[ImmutableMultiDict[str, str], Depends(signed_form)]


def required(form: ImmutableMultiDict[str, str], name: str, max_length: int = 64) -> str:
    value = (form.get(name) or "").strip()
    if not value or len(value) > max_length:
        raise BadInput(f"{name}: required, at most {max_length} characters")
    return value


def _optional_int(form: ImmutableMultiDict[str, str], name: str) -> int | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 12:
        raise BadInput(f"{name}: not a number")
    return int(value)


def _timestamp(form: ImmutableMultiDict[str, str]) -> Any:
    raw = form.get("Timestamp")
    if not raw:
        return None
    try:
        return parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None


def url_of(settings: Settings, path: str) -> str:
    return settings.public_url.rstrip("/") + path


def xml(twiml: VoiceResponse | str) -> Response:
    return Response(str(twiml), media_type=XML)


# ---- voice --------------------------------------------------------------------------------


@router.post("/telephony/twilio/voice", response_class=Response,
             responses={200: {"content": {XML: {}}, "description": "TwiML"}})
async def voice(form: TwilioForm, session: SessionDep, settings: SettingsDep) -> Response:
    """An incoming call (or a browser phone's outgoing one): record it and say where it goes."""
    sid = required(form, "CallSid")
    caller = (form.get("From") or "")[:64]
    options = calls.options_from(settings)
    operator_id = calls.user_id_of_identity(caller) if caller.startswith("client:") else None
    if operator_id is not None:
        return await _browser_call(session, settings, form, sid, operator_id)
    ringing = await calls.ring(session, calls.Ring(
        provider=PROVIDER, call_id=sid, direction=CallDirection.inbound, from_=caller,
        to=(form.get("To") or "")[:64], route=True), options=options)
    twiml = inbound_twiml(ringing, settings)
    await session.commit()
    await events.sockets_first()
    return xml(twiml)


def inbound_twiml(ringing: calls.Ringing, settings: Settings) -> VoiceResponse:
    call, response, voice = ringing.call, VoiceResponse(), ringing.voice
    status_url = url_of(settings, "/telephony/twilio/status")
    if call.routed == Routed.rejected:
        response.reject(reason="busy")
    elif call.routed == Routed.voicemail:
        twiml.closed(response, voice)
        response.record(max_length=120, play_beep=True, recording_status_callback=status_url)
    elif call.routed == Routed.menu:
        return twiml.menu(voice, action=url_of(settings, "/telephony/twilio/menu"))
    elif call.routed == Routed.dial and call.offered_user_ids:
        twiml.recording_notice(response, voice)
        recording = ({"record": "record-from-answer-dual", "recording_status_callback": status_url}
                     if voice.record_calls else {})
        dial = response.dial(answer_on_bridge=True, timeout=settings.twilio_ring_timeout,
                             **recording)
        for user_id in call.offered_user_ids:
            dial.client(calls.client_identity(user_id), status_callback=status_url,
                        status_callback_event="answered")
    elif call.state == CallState.ringing:
        # The wait URL answers <Leave> once an operator is free; the caller then goes on to
        # the next verb, which offers the call to whoever is free at that moment.
        response.enqueue(ringing.inbox_name, wait_url=url_of(settings, "/telephony/twilio/wait"))
        response.redirect(url_of(settings, "/telephony/twilio/offer"))
    else:
        response.hangup()
    return response


async def _browser_call(
    session: SessionDep, settings: Settings, form: ImmutableMultiDict[str, str], sid: str,
    operator_id: int,
) -> Response:
    destination = (form.get("To") or "")[:64]
    options = calls.options_from(settings)
    e164 = normalize.phone(destination, options.region)
    config = await calls.cti_config(session)
    caller_id = calls.outbound_caller_id(config, e164.lstrip("+")) if e164 else None
    response = VoiceResponse()
    if e164 is None or caller_id is None:
        response.say("この番号には発信できません。", language="ja-JP")
        response.hangup()
        return xml(response)
    await calls.ring(session, calls.Ring(
        provider=PROVIDER, call_id=sid, direction=CallDirection.outbound, from_=caller_id, to=e164,
        operator_id=operator_id, ticket_id=await _ticket_param(session, form, operator_id)),
        options=options)
    response.dial(e164, caller_id=caller_id, answer_on_bridge=True)
    await session.commit()
    return xml(response)


async def _ticket_param(session: SessionDep, form: ImmutableMultiDict[str, str],
                        operator_id: int) -> int | None:
    """The ticket a browser phone's call was started from (its ``TicketId`` parameter), when
    the operator may see it."""
    raw = (form.get("TicketId") or "").strip()
    if not raw.isdigit() or len(raw) > 12:
        return None
    operator = await session.get(User, operator_id)
    inbox_id = await tickets.inbox_of(session, int(raw))
    visible = await inbox_service.visible_inbox_ids(session, operator) if operator else set()
    if inbox_id is None or (visible is not None and inbox_id not in visible):
        return None
    return int(raw)


@router.post("/telephony/twilio/wait", response_class=Response)
async def wait(form: TwilioForm, session: ReadSessionDep, settings: SettingsDep) -> Response:
    """What a queued caller hears while waiting; Twilio asks again each time it has played.

    Once an operator is free the caller leaves the queue (``<Leave>``) for the offer below.
    """
    sid, options = required(form, "CallSid"), calls.options_from(settings)
    if await calls.operator_free_for(session, PROVIDER, sid, options=options):
        response = VoiceResponse()
        response.leave()
        return xml(response)
    voice = await calls.voice_for_call(session, PROVIDER, sid, options=options)
    return xml(twiml.waiting(voice, first=_optional_int(form, "QueueTime") in (None, 0),
                              position=_optional_int(form, "QueuePosition"),
                              callback=url_of(settings, "/telephony/twilio/callback")))


@router.post("/telephony/twilio/offer", response_class=Response,
             responses={200: {"content": {XML: {}}, "description": "TwiML"}})
async def offer(form: TwilioForm, session: SessionDep, settings: SettingsDep) -> Response:
    """A caller who left the queue: ring the operators free now, or queue again."""
    ringing = await calls.offer_queued(session, PROVIDER, required(form, "CallSid"),
                                       options=calls.options_from(settings))
    if ringing is None:
        response = VoiceResponse()
        response.hangup()
        return xml(response)
    twiml = inbound_twiml(ringing, settings)
    await session.commit()
    await events.sockets_first()
    return xml(twiml)


# ---- status callbacks ---------------------------------------------------------------------


@router.post("/telephony/twilio/status", status_code=204, response_class=Response)
async def status(form: TwilioForm, session: SessionDep, settings: SettingsDep) -> Response:
    """Call progress, answer by an operator's browser, hang-up, and recordings."""
    sid = required(form, "CallSid")
    parent = (form.get("ParentCallSid") or "").strip()[:64]
    call_status = (form.get("CallStatus") or "").strip()
    options = calls.options_from(settings)
    if form.get("RecordingUrl"):
        recording = (form.get("RecordingSid") or form.get("RecordingUrl") or "")[:64]
        await calls.store_recording(session, PROVIDER, parent or sid, key=f"{sid}:rec:{recording}",
                                    url=required(form, "RecordingUrl", 500),
                                    seconds=_optional_int(form, "RecordingDuration"))
    elif parent:
        await _operator_leg(session, form, parent, sid, call_status, options)
    else:
        await _caller_leg(session, form, sid, call_status, options)
    await session.commit()
    return Response(status_code=204)


async def _operator_leg(
    session: SessionDep, form: ImmutableMultiDict[str, str], parent: str, sid: str,
    call_status: str, options: calls.CallOptions,
) -> None:
    """A ``<Client>`` leg of a dialled call: its answer names the operator who took the call."""
    operator_id = calls.user_id_of_identity(form.get("To") or form.get("Called") or "")
    if call_status == "in-progress" and operator_id is not None:
        await calls.answer(session, PROVIDER, parent, key=f"{sid}:{call_status}",
                           operator_id=operator_id, at=_timestamp(form), options=options)


async def _caller_leg(
    session: SessionDep, form: ImmutableMultiDict[str, str], sid: str, call_status: str,
    options: calls.CallOptions,
) -> None:
    key, sequence, at = f"{sid}:{call_status}", _optional_int(form, "SequenceNumber"), _timestamp(form)
    if call_status == "in-progress":
        await calls.answer(session, PROVIDER, sid, key=key, sequence=sequence, at=at, options=options)
    elif call_status in TERMINAL:
        await calls.hangup(session, PROVIDER, sid, key=key, cause=call_status, sequence=sequence,
                           duration=_optional_int(form, "CallDuration"), at=at, options=options)
    elif call_status in PROGRESS:
        await calls.note_event(session, PROVIDER, sid, key=key, sequence=sequence)
    else:
        raise BadInput("CallStatus: unknown status")


# ---- SMS and WhatsApp ---------------------------------------------------------------------


@router.post("/telephony/twilio/sms", response_class=Response)
async def sms(form: TwilioForm, session: SessionDep, settings: SettingsDep) -> Response:
    """An SMS or WhatsApp message in: into a ticket through ingest, deduplicated by MessageSid."""
    sid = required(form, "MessageSid") if form.get("MessageSid") else required(form, "SmsSid")
    sender = required(form, "From")
    channel = Channel.whatsapp if sender.startswith("whatsapp:") else Channel.sms
    to = (form.get("To") or "").removeprefix("whatsapp:")
    inbox = await inbox_service.inbox_for_number(session, to, region=settings.default_region)
    await tickets.ingest(session, InboundMessage(
        channel=channel, external_id=sid,
        sender=Sender(phone=sender.removeprefix("whatsapp:"), name=form.get("ProfileName") or None),
        body_text=_sms_body(form), inbox=inbox.name, metadata={"to": form.get("To")},
    ), options=tickets.IngestOptions(region=settings.default_region))
    await session.commit()
    return xml("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>")


def _sms_body(form: ImmutableMultiDict[str, str]) -> str:
    """The text, with links to any media (fetched later, never on the webhook's clock)."""
    body = (form.get("Body") or "")[:10_000]
    media_count = min(_optional_int(form, "NumMedia") or 0, 10)
    links = [form.get(f"MediaUrl{i}") or "" for i in range(media_count)]
    return "\n".join([body, *[link for link in links if link]]).strip()


# ---- browser phone ------------------------------------------------------------------------


@router.get("/api/telephony/token")
async def browser_phone_token(user: CurrentUser, settings: SettingsDep) -> dict[str, Any]:
    """A short-lived Twilio access token for the operator's browser phone."""
    if not (settings.twilio_account_sid and settings.twilio_api_key and settings.twilio_api_secret):
        raise NotFound("the browser phone is not configured")
    assert user.id is not None
    identity = calls.client_identity(user.id)
    token = AccessToken(settings.twilio_account_sid, settings.twilio_api_key,
                        settings.twilio_api_secret, identity=identity, ttl=TOKEN_TTL)
    token.add_grant(VoiceGrant(outgoing_application_sid=settings.twilio_twiml_app_sid,
                               incoming_allow=True))
    return {"token": token.to_jwt(), "identity": identity, "expires_in": TOKEN_TTL}


# ---- REST ---------------------------------------------------------------------------------


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


def rest_client(settings: Settings) -> Client:
    """A Twilio REST client for the configured account, pointed at ``TWILIO_API_BASE`` if set."""
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        raise NotFound("Twilio is not configured")
    return Client(settings.twilio_account_sid, settings.twilio_auth_token,
                  http_client=HttpxTwilioClient(settings.twilio_api_base))


async def send_sms(
    client: Client, *, to: str, from_: str, body: str, status_callback: str | None = None
) -> str:
    """Send an SMS, or a WhatsApp message when the numbers start ``whatsapp:``; its MessageSid.

    Raises ``TwilioRestException`` when Twilio refuses and ``httpx.HTTPError`` when unreachable.
    """
    message = await client.messages.create_async(
        to=to, from_=from_, body=body,
        status_callback=status_callback if status_callback else values.unset)
    return str(message.sid)


def dialer(settings: Settings) -> calls.Dialer:
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
            raise calls.DialFailed(f"Twilio refused the call: {exc.msg}") from exc
        except httpx.HTTPError as exc:
            raise calls.DialFailed("Twilio could not be reached") from exc
        return str(call.sid)

    return dial
