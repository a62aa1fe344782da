"""Twilio: the keypad menu's answer and the queue's callback offer (both signed like every
Twilio webhook). The TwiML callers hear is built in ``telephony.twiml``."""

from fastapi import APIRouter, Response
from twilio.twiml.voice_response import VoiceResponse

from helpdesk.calls import service as calls
from helpdesk.config import SettingsDep
from helpdesk.db import ReadSessionDep, SessionDep
from telephony import twiml
from telephony.twilio import answer_ringing
from telephony.twilio_request import PROVIDER, TWIML_RESPONSES, TwilioForm, required, xml

router = APIRouter(tags=["telephony"])


def _digit(form: TwilioForm) -> str | None:
    digits = (form.get("Digits") or "").strip()
    return digits[:1] if digits else None


@router.post("/telephony/twilio/menu", response_class=Response, responses=TWIML_RESPONSES)
async def menu(form: TwilioForm, session: SessionDep, settings: SettingsDep) -> Response:
    """The caller's key in the inbox's menu (none: stay in the called inbox): offer the call
    to the chosen inbox's free operators, or queue it there."""
    ringing = await calls.menu_choice(session, PROVIDER, required(form, "CallSid"), _digit(form),
                                      options=calls.options_from(settings))
    return await answer_ringing(session, ringing, settings)


@router.post("/telephony/twilio/callback", response_class=Response, responses=TWIML_RESPONSES)
async def callback(form: TwilioForm, session: SessionDep, settings: SettingsDep) -> Response:
    """A queued caller's answer to the callback offer: 1 makes a callback task and hangs up."""
    if _digit(form) != "1":
        return xml(VoiceResponse())  # back to the queue's wait
    call = await calls.request_callback(session, PROVIDER, required(form, "CallSid"),
                                        options=calls.options_from(settings))
    await session.commit()
    if call is None:
        return xml(twiml.hang_up())
    return xml(twiml.callback_taken())


@router.post("/telephony/twilio/hold", response_class=Response, responses=TWIML_RESPONSES)
async def hold(form: TwilioForm, session: ReadSessionDep, settings: SettingsDep) -> Response:
    """What a caller on hold hears while their call is handed over (a conference's wait URL)."""
    voice = await calls.voice_for_call(session, PROVIDER, required(form, "CallSid"),
                                       options=calls.options_from(settings))
    return xml(twiml.on_hold(voice))
