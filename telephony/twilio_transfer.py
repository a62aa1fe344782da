"""Twilio's part of a transfer, through its REST API (the calls' TwiML replaced in flight).

- Blind to an operator: the caller's call is redirected to ``<Dial><Client>`` the receiver; the
  receiver's answer (its leg's status callback) completes the transfer.
- Blind to an inbox: the caller is redirected into that inbox's queue and offered from there.
- Warm: the caller waits in a conference of their own (hold music until an operator joins it),
  while both operators are called into a consultation conference. Completing moves the
  receiver's leg into the caller's conference and hangs up the first operator's; cancelling does
  the opposite.
"""

import httpx
from twilio.base.exceptions import TwilioRestException
from twilio.twiml.voice_response import Dial, VoiceResponse

from helpdesk.calls import operators as call_operators
from helpdesk.calls.models import Call, CallTransfer, TransferMode
from helpdesk.calls.transfer import SwitchFailed
from helpdesk.config import Settings
from telephony.twilio_request import url_of
from telephony.twilio_rest import rest_client


def caller_room(call: Call) -> str:
    """The conference a warm transfer's caller waits in."""
    return f"call-{call.id}"


def consult_room(transfer: CallTransfer) -> str:
    """The conference the two operators consult in."""
    return f"consult-{transfer.id}"


def _conference(room: str, *, starts: bool, ends: bool, hold: str | None = None) -> str:
    response, dial = VoiceResponse(), Dial()
    options = {"wait_url": hold} if hold else {}
    dial.conference(room, start_conference_on_enter=starts, end_conference_on_exit=ends,
                    beep=False, **options)
    response.append(dial)
    return str(response)


class TwilioSwitch:
    """Moves calls between operators with Twilio's REST API."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def start(self, call: Call, transfer: CallTransfer, *, inbox_name: str | None) -> None:
        """Begin moving the caller (and, for a consultation, call both operators)."""
        status = url_of(self.settings, "/telephony/twilio/status")
        response = VoiceResponse()
        if transfer.mode == TransferMode.warm:
            hold = (url_of(self.settings, "/telephony/twilio/hold"))
            await self._update(call.call_id, twiml=_conference(caller_room(call), starts=False,
                                                               ends=True, hold=hold))
            room = _conference(consult_room(transfer), starts=True, ends=False)
            transfer.from_leg = await self._dial(transfer.from_user_id, call, room)
            transfer.to_leg = await self._dial(transfer.to_user_id, call, room)
            return
        if transfer.to_user_id is not None:
            dial = response.dial(answer_on_bridge=True, timeout=self.settings.twilio_ring_timeout)
            dial.client(call_operators.client_identity(transfer.to_user_id), status_callback=status,
                        status_callback_event="answered")
        else:
            response.enqueue(inbox_name or "default",
                             wait_url=url_of(self.settings, "/telephony/twilio/wait"))
            response.redirect(url_of(self.settings, "/telephony/twilio/offer"))
        await self._update(call.call_id, twiml=str(response))

    async def complete(self, call: Call, transfer: CallTransfer) -> None:
        """End a consultation: the receiver joins the caller, the first operator leaves."""
        if transfer.mode != TransferMode.warm or not (transfer.from_leg and transfer.to_leg):
            return
        await self._update(transfer.to_leg, twiml=_conference(caller_room(call), starts=True,
                                                              ends=True))
        await self._update(transfer.from_leg, status="completed")

    async def cancel(self, call: Call, transfer: CallTransfer) -> None:
        """Call a consultation off: the first operator goes back to the caller."""
        if transfer.mode != TransferMode.warm or not (transfer.from_leg and transfer.to_leg):
            return
        await self._update(transfer.from_leg, twiml=_conference(caller_room(call), starts=True,
                                                                ends=True))
        await self._update(transfer.to_leg, status="completed")

    async def _dial(self, user_id: int | None, call: Call, twiml: str) -> str:
        if user_id is None:
            raise SwitchFailed("a consultation needs an operator to consult")
        try:
            created = await rest_client(self.settings).calls.create_async(
                to=f"client:{call_operators.client_identity(user_id)}", from_=call.to_number, twiml=twiml)
        except TwilioRestException as exc:
            raise SwitchFailed(f"Twilio refused the transfer: {exc.msg}") from exc
        except httpx.HTTPError as exc:
            raise SwitchFailed("Twilio could not be reached") from exc
        return str(created.sid)

    async def _update(self, sid: str, **changes: str) -> None:
        try:
            await rest_client(self.settings).calls(sid).update_async(**changes)
        except TwilioRestException as exc:
            raise SwitchFailed(f"Twilio refused the transfer: {exc.msg}") from exc
        except httpx.HTTPError as exc:
            raise SwitchFailed("Twilio could not be reached") from exc
