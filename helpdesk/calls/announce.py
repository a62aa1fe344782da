"""The events a call sends to operators' pages: the ringing card, answered, ended, missed."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.calls import recent, threads
from helpdesk.calls.models import Call, CallPublic
from helpdesk.profiles import service as profiles
from helpdesk.realtime import events


def public(call: Call) -> dict[str, Any]:
    """The call as events and the API show it."""
    return CallPublic.model_validate(call).model_dump(mode="json", by_alias=True)


def audience(call: Call) -> list[int]:
    """The operators a call's events go to: those offered it and the one who has it."""
    ids = list(call.offered_user_ids)
    if call.operator_id is not None and call.operator_id not in ids:
        ids.append(call.operator_id)
    return ids


async def ringing(
    session: AsyncSession, call: Call, customer: profiles.CustomerRows | None, *, region: str,
    dormant_after_days: int, user_ids: list[int] | None = None,
    transfer: dict[str, Any] | None = None,
) -> None:
    """Pop the card: the call, the caller's headline and profile (and a transfer's notes)."""
    profile = None
    if customer is not None:
        found = await profiles.complete(session, customer, profiles.ProfileScope(None, {call.inbox_id}),
                                        dormant_after_days, recent_calls=recent.recent_calls)
        profile = found.model_dump(mode="json")
    events.record(session, events.CallRinging(
        user_ids=call.offered_user_ids if user_ids is None else user_ids, call=public(call),
        caller=threads.caller_card(call, profile, region), profile=profile,
        transfer=events.ABSENT if transfer is None else transfer))


def publish(session: AsyncSession, call: Call, kind: type[events.CallOutcome]) -> None:
    """How the call ended (ended, missed), to its operators and inbox."""
    events.record(session, kind(inbox_id=call.inbox_id, user_ids=audience(call), call=public(call)))


def publish_answered(session: AsyncSession, call: Call) -> None:
    """Answered: the answering operator's page opens the ticket (or the customer); others close
    the pop-up."""
    target = ({"ticket_id": call.ticket_id} if call.ticket_id is not None
              else {"customer_id": call.customer_id} if call.customer_id is not None
              else {"new_ticket": {"phone": call.caller_e164}})
    events.record(session, events.CallAnswered(user_ids=audience(call), call=public(call),
                                               operator_id=call.operator_id, open=target))
