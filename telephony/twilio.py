"""Twilio: the voice webhook (TwiML), call status callbacks, SMS / WhatsApp inbound and the browser
phone's access token.

Every webhook is verified (``telephony.twilio_request``) before anything is parsed or stored; the
REST client that places calls and sends replies is ``telephony.twilio_rest``.
"""

from typing import Any

from fastapi import APIRouter, Response
from starlette.datastructures import ImmutableMultiDict
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant
from twilio.twiml.voice_response import VoiceResponse

from helpdesk import normalize
from helpdesk.auth.dependencies import CurrentUser
from helpdesk.auth.models import User
from helpdesk.calls import operators as call_operators
from helpdesk.calls import service as calls
from helpdesk.calls import settings as cti_settings
from helpdesk.calls.models import CallDirection
from helpdesk.config import Settings, SettingsDep
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.errors import BadInput, NotFound
from helpdesk.inboxes import service as inbox_service
from helpdesk.realtime.log import sockets_first
from helpdesk.tickets import ingest as ticket_ingest
from helpdesk.tickets import queries as ticket_queries
from helpdesk.tickets.models import Channel, InboundMessage, Sender
from telephony import twiml
from telephony.twilio_request import (
    PROVIDER,
    TWIML_RESPONSES,
    TwilioForm,
    optional_int,
    required,
    timestamp,
    url_of,
    xml,
)

router = APIRouter(tags=["telephony"])
TERMINAL = {"completed", "busy", "no-answer", "failed", "canceled"}
PROGRESS = {"queued", "initiated", "ringing"}
TOKEN_TTL = 3600


@router.post("/telephony/twilio/voice", response_class=Response, responses=TWIML_RESPONSES)
async def voice(form: TwilioForm, session: SessionDep, settings: SettingsDep) -> Response:
    """An incoming call (or a browser phone's outgoing one): record it and say where it goes."""
    sid = required(form, "CallSid")
    caller = (form.get("From") or "")[:64]
    options = calls.options_from(settings)
    operator_id = call_operators.user_id_of_identity(caller) if caller.startswith("client:") else None
    if operator_id is not None:
        return await _browser_call(session, settings, form, sid, operator_id)
    ringing = await calls.ring(session, calls.Ring(
        provider=PROVIDER, call_id=sid, direction=CallDirection.inbound, from_=caller,
        to=(form.get("To") or "")[:64], route=True), options=options)
    return await answer_ringing(session, ringing, settings)


async def answer_ringing(session: SessionDep, ringing: calls.Ringing | None, settings: Settings) -> Response:
    """TwiML for a call just offered or queued (hang up when it is unknown), sent once the
    operators' sockets have the ring."""
    if ringing is None:
        return xml(twiml.hang_up())
    answer = twiml.inbound(ringing, settings)
    await session.commit()
    await sockets_first()
    return xml(answer)


async def _browser_call(
    session: SessionDep, settings: Settings, form: ImmutableMultiDict[str, str], sid: str,
    operator_id: int,
) -> Response:
    destination = (form.get("To") or "")[:64]
    options = calls.options_from(settings)
    e164 = normalize.phone(destination, options.region)
    config = await cti_settings.cti_config(session)
    caller_id = cti_settings.outbound_caller_id(config, e164.lstrip("+")) if e164 else None
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
    inbox_id = await ticket_queries.inbox_of(session, int(raw))
    if operator is None or inbox_id is None or not await inbox_service.works_in(session, operator, inbox_id):
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
    return xml(twiml.waiting(voice, first=optional_int(form, "QueueTime") in (None, 0),
                              position=optional_int(form, "QueuePosition"),
                              callback=url_of(settings, "/telephony/twilio/callback")))


@router.post("/telephony/twilio/offer", response_class=Response, responses=TWIML_RESPONSES)
async def offer(form: TwilioForm, session: SessionDep, settings: SettingsDep) -> Response:
    """A caller who left the queue: ring the operators free now, or queue again."""
    ringing = await calls.offer_queued(session, PROVIDER, required(form, "CallSid"),
                                       options=calls.options_from(settings))
    return await answer_ringing(session, ringing, settings)


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
                                    seconds=optional_int(form, "RecordingDuration"))
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
    operator_id = call_operators.user_id_of_identity(form.get("To") or form.get("Called") or "")
    if call_status == "in-progress" and operator_id is not None:
        await calls.answer(session, PROVIDER, parent, key=f"{sid}:{call_status}",
                           operator_id=operator_id, at=timestamp(form), options=options)


async def _caller_leg(
    session: SessionDep, form: ImmutableMultiDict[str, str], sid: str, call_status: str,
    options: calls.CallOptions,
) -> None:
    key, sequence, at = f"{sid}:{call_status}", optional_int(form, "SequenceNumber"), timestamp(form)
    if call_status == "in-progress":
        await calls.answer(session, PROVIDER, sid, key=key, sequence=sequence, at=at, options=options)
    elif call_status in TERMINAL:
        await calls.hangup(session, PROVIDER, sid, key=key, cause=call_status, sequence=sequence,
                           duration=optional_int(form, "CallDuration"), at=at, options=options)
    elif call_status in PROGRESS:
        await calls.note_event(session, PROVIDER, sid, key=key, sequence=sequence)
    else:
        raise BadInput("CallStatus: unknown status")


@router.post("/telephony/twilio/sms", response_class=Response)
async def sms(form: TwilioForm, session: SessionDep, settings: SettingsDep) -> Response:
    """An SMS or WhatsApp message in: into a ticket through ingest, deduplicated by MessageSid."""
    sid = required(form, "MessageSid") if form.get("MessageSid") else required(form, "SmsSid")
    sender = required(form, "From")
    channel = Channel.whatsapp if sender.startswith("whatsapp:") else Channel.sms
    to = (form.get("To") or "").removeprefix("whatsapp:")
    inbox = await inbox_service.inbox_for_number(session, to, region=settings.default_region)
    await ticket_ingest.ingest(session, InboundMessage(
        channel=channel, external_id=sid,
        sender=Sender(phone=sender.removeprefix("whatsapp:"), name=form.get("ProfileName") or None),
        body_text=_sms_body(form), inbox=inbox.name, metadata={"to": form.get("To")},
    ), options=ticket_ingest.IngestOptions(region=settings.default_region))
    await session.commit()
    return xml("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>")


def _sms_body(form: ImmutableMultiDict[str, str]) -> str:
    """The text, with links to any media (fetched later, never on the webhook's clock)."""
    body = (form.get("Body") or "")[:10_000]
    media_count = min(optional_int(form, "NumMedia") or 0, 10)
    links = [form.get(f"MediaUrl{i}") or "" for i in range(media_count)]
    return "\n".join([body, *[link for link in links if link]]).strip()


@router.get("/api/telephony/token")
async def browser_phone_token(user: CurrentUser, settings: SettingsDep) -> dict[str, Any]:
    """A short-lived Twilio access token for the operator's browser phone."""
    if not (settings.twilio_account_sid and settings.twilio_api_key and settings.twilio_api_secret):
        raise NotFound("the browser phone is not configured")
    assert user.id is not None
    identity = call_operators.client_identity(user.id)
    token = AccessToken(settings.twilio_account_sid, settings.twilio_api_key,
                        settings.twilio_api_secret, identity=identity, ttl=TOKEN_TTL)
    token.add_grant(VoiceGrant(outgoing_application_sid=settings.twilio_twiml_app_sid,
                               incoming_allow=True))
    return {"token": token.to_jwt(), "identity": identity, "expires_in": TOKEN_TTL}
