"""Generic CTI, compatible with the protocol Zammad documents for PBXs, so existing connectors work.

A PBX posts ``newCall``, ``answer`` and ``hangup`` events (form or JSON) to
``/telephony/cti/{token}``. Answers are ``{}``, ``{"action": "reject", "reason": "busy"}`` for a
blocked caller, or ``{"action": "dial", "caller_id", "number"}`` for an outbound caller-id rewrite.
"""

import hmac
import json
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request

from helpdesk.calls import operators as call_operators
from helpdesk.calls import service as calls
from helpdesk.calls import settings as cti_settings
from helpdesk.calls.models import Call, CallDirection, Routed
from helpdesk.config import SettingsDep
from helpdesk.db import SessionDep
from helpdesk.errors import BadInput, NotFound, Unauthorized
from helpdesk.realtime.log import sockets_first

router = APIRouter(tags=["telephony"])
PROVIDER = "cti"
EVENTS = ("newCall", "answer", "hangup")
MAX_FIELDS = 100
LIMITS = {"from": 64, "to": 64, "queue": 120, "cause": 40, "answeringNumber": 120}


@router.post("/telephony/cti/{token}")
async def cti_event(token: str, request: Request, session: SessionDep,
                    settings: SettingsDep) -> dict[str, str]:
    """One PBX event; retries change nothing."""
    if not settings.cti_token:
        raise NotFound("generic CTI is not configured")
    if not hmac.compare_digest(token.encode(), settings.cti_token.encode()):
        raise Unauthorized("wrong CTI token")
    params = await _params(request)
    event, direction = _text(params, "event", 20), _text(params, "direction", 3)
    if event not in EVENTS:
        raise BadInput("event: must be newCall, answer or hangup")
    if direction not in ("in", "out"):
        raise BadInput("direction: must be in or out")
    call_id = _text(params, "callId", 250) or _text(params, "call_id", 250)
    if not call_id:
        raise BadInput("callId: required")
    fields = {name: _text(params, name, limit) for name, limit in LIMITS.items()}
    user = _user(params)
    options = calls.options_from(settings)
    if event == "newCall":
        answer = await _new_call(session, call_id, CallDirection(direction), fields, user, options)
    elif event == "answer":
        answered_by = fields["answeringNumber"] or user
        operator_id = (await call_operators.user_id_named(session, fields["answeringNumber"])
                       or await call_operators.user_id_named(session, user))
        # Keyed by who answered: a retry changes nothing, while an answer by someone else on a
        # call in progress is the PBX transferring it.
        key = f"answer:{operator_id}" if operator_id is not None else "answer"
        _known(await calls.answer(session, PROVIDER, call_id, key=key, operator_id=operator_id,
                                  answered_by=answered_by, options=options))
        answer = {}
    else:
        _known(await calls.hangup(session, PROVIDER, call_id, key="hangup",
                                  cause=fields["cause"] or None, options=options))
        answer = {}
    await session.commit()
    await sockets_first()
    return answer


async def _new_call(
    session: SessionDep, call_id: str, direction: CallDirection, fields: dict[str, str],
    user: str, options: calls.CallOptions,
) -> dict[str, str]:
    operator_id = (await call_operators.user_id_named(session, user)
                   if direction == CallDirection.outbound else None)
    ringing = await calls.ring(session, calls.Ring(
        provider=PROVIDER, call_id=call_id, direction=direction, from_=fields["from"],
        to=fields["to"], queue=fields["queue"] or None, user_label=user or None,
        operator_id=operator_id), options=options)
    if ringing.call.routed == Routed.rejected:
        return {"action": "reject", "reason": "busy"}
    if direction == CallDirection.outbound and fields["to"]:
        caller_id = cti_settings.outbound_caller_id(ringing.config, fields["to"])
        if caller_id:
            return {"action": "dial", "caller_id": caller_id, "number": fields["to"]}
    return {}


def _known(call: Call | None) -> None:
    if call is None:
        raise NotFound("unknown callId")


async def _params(request: Request) -> dict[str, Any]:
    """The event's parameters from a JSON or form body (``user[]`` kept as a list)."""
    body = await request.body()
    if "json" in request.headers.get("content-type", ""):
        try:
            parsed = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise BadInput("body: not valid JSON") from None
        if not isinstance(parsed, dict):
            raise BadInput("body: expected a JSON object")
        return parsed
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise BadInput("body: not a valid form") from None
    params: dict[str, Any] = {}
    for name, value in pairs:
        if name in ("user[]", "user"):
            params.setdefault("user", []).append(value)
        else:
            params[name] = value
    return params


def _text(params: dict[str, Any], name: str, limit: int) -> str:
    value = params.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadInput(f"{name}: must be a string")
    text = str(value).strip()
    if len(text) > limit:
        raise BadInput(f"{name}: at most {limit} characters")
    return text


def _user(params: dict[str, Any]) -> str:
    """``user`` as a string or a list of names, joined with ", "."""
    value = params.get("user", params.get("user[]"))
    if value is None:
        return ""
    names = value if isinstance(value, list) else [value]
    if not all(isinstance(name, str) for name in names):
        raise BadInput("user: must be a string or a list of strings")
    joined = ", ".join(name.strip() for name in names if name.strip())
    if len(joined) > 500:
        raise BadInput("user: too long")
    return joined
