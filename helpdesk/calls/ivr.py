"""The keypad menu and the queue's callback offer: where a caller's choice sends the call.

What callers hear is built by the provider adapter from the inbox's ``VoiceConfig``; here is
what their keys do: a menu option moves the call to its inbox and tags the ticket it makes,
and a queued caller who asks to be called back gets a callback task (a ticket tagged 折り返し).
"""

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.calls import threads
from helpdesk.calls.models import Call
from helpdesk.calls.settings_models import VoiceConfig
from helpdesk.inboxes.models import Inbox
from helpdesk.realtime import events

CALLBACK_TAG = "折り返し"


async def apply_choice(session: AsyncSession, call: Call, voice: VoiceConfig | None,
                       digit: str | None) -> None:
    """Send the call where the pressed key's option says; an unknown key keeps it where it is."""
    option = next((o for o in (voice.menu if voice else []) if o.digit == digit), None)
    if option is None:
        return
    if option.inbox_id is not None and await session.get(Inbox, option.inbox_id) is not None:
        call.inbox_id = option.inbox_id
    call.menu_tag = option.tag
    events.record(session, events.CallMenuChosen(inbox_id=call.inbox_id, call_id=call.id,
                                                 digit=option.digit, tag=option.tag))


async def callback_task(session: AsyncSession, call: Call, *, region: str, timezone: str,
                        reopen_window: timedelta) -> None:
    """The caller's callback request as a ticket of its own inbox, tagged for calling back; a
    hang-up that follows adds to the same ticket rather than making a missed-call one."""
    call.menu_tag = call.menu_tag or CALLBACK_TAG
    ticket_id = await threads.callback_ticket(session, call, region=region, timezone=timezone,
                                              reopen_window=reopen_window)
    events.record(session, events.CallCallbackRequested(
        inbox_id=call.inbox_id, call_id=call.id, ticket_id=ticket_id, customer_id=call.customer_id))
