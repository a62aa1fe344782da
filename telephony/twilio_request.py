"""Twilio webhooks' common ground: the signed form, its fields, and TwiML answers.

Every webhook is verified with the twilio library's ``RequestValidator`` over ``PUBLIC_URL`` + path
(+ query) and the raw form, duplicate keys kept, before anything is parsed or stored.
"""

from email.utils import parsedate_to_datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, Request, Response
from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import (
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from twilio.twiml.voice_response import VoiceResponse

from helpdesk.config import Settings, SettingsDep
from helpdesk.errors import BadInput, Forbidden, NotFound

PROVIDER = "twilio"
MAX_FIELDS = 200
XML = "text/xml"
# How a webhook answering with TwiML is described in the OpenAPI schema.
TWIML_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": {XML: {}}, "description": "TwiML"}}


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


def optional_int(form: ImmutableMultiDict[str, str], name: str) -> int | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 12:
        raise BadInput(f"{name}: not a number")
    return int(value)


def timestamp(form: ImmutableMultiDict[str, str]) -> Any:
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
