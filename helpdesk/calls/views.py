"""The admin page for what each inbox's callers hear: greeting, keypad menu, hold music,
queue announcements, callback offer, closed-hours message and recording."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from helpdesk.audit import service as audit
from helpdesk.auth.dependencies import Admin
from helpdesk.calls import settings as cti_settings
from helpdesk.calls.settings_models import VoiceConfig
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.errors import BadInput
from helpdesk.inboxes import service as inbox_service
from helpdesk.inboxes.models import Inbox
from helpdesk.web import templating

router = APIRouter(include_in_schema=False)
DIGITS = [str(n) for n in range(1, 10)]


@router.get("/admin/inboxes/{inbox_id}/voice")
async def voice_page(request: Request, session: ReadSessionDep, admin: Admin, inbox_id: int) -> Response:
    """The inbox's voice settings as a form."""
    inbox = await inbox_service.inbox_or_404(session, inbox_id)
    context = {"inbox": inbox, "voice": await cti_settings.voice_config(session, inbox_id),
               "inboxes": await inbox_service.inboxes_by_id(session, None), "digits": DIGITS}
    return templating.render(request, "admin/voice.html", context, user=admin)


@router.post("/admin/inboxes/{inbox_id}/voice")
async def save_voice(request: Request, session: SessionDep, admin: Admin, inbox_id: int,
                     greeting: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """Save the form; a bad value is named in a toast and nothing is saved."""
    inbox = await inbox_service.inbox_or_404(session, inbox_id)
    config = _config_from(await request.form(), greeting)
    for option in config.menu:
        if option.inbox_id is not None and await session.get(Inbox, option.inbox_id) is None:
            raise BadInput(f"menu {option.digit}: no such inbox")
    await cti_settings.save_voice_config(session, inbox_id, config)
    audit.record(session, action="inbox.voice.update", actor_id=admin.id, actor_email=admin.email,
                 target_type="inbox", target_id=inbox_id)
    await session.commit()
    context = {"inbox": inbox, "voice": config, "saved": True, "digits": DIGITS,
               "inboxes": await inbox_service.inboxes_by_id(session, None)}
    return templating.render(request, "admin/voice.html", context, user=admin, block="voice_form")


def _config_from(form: object, greeting: str) -> VoiceConfig:
    get = form.get  # type: ignore[attr-defined]

    def text(name: str) -> str:
        value = get(name)
        return value.strip() if isinstance(value, str) else ""

    menu = []
    for digit in DIGITS:
        label = text(f"menu_{digit}_label")
        if label:
            target = text(f"menu_{digit}_inbox")
            menu.append({"digit": digit, "label": label,
                         "inbox_id": int(target) if target.isdigit() else None,
                         "tag": text(f"menu_{digit}_tag") or None})
    fields = {"greeting": greeting.strip(), "menu": menu,
              "greeting_audio_url": text("greeting_audio_url") or None,
              "hold_music_url": text("hold_music_url") or None,
              "announce_position": get("announce_position") == "on",
              "callback_offer": get("callback_offer") == "on",
              "closed_message": text("closed_message"),
              "closed_audio_url": text("closed_audio_url") or None,
              "record_calls": get("record_calls") == "on",
              "record_announcement": text("record_announcement")}
    try:
        return VoiceConfig.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BadInput(f"{where}: {first['msg']}") from None
