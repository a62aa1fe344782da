"""Pages whose data comes from the JSON API of the phone system (the caller log, CTI settings),
and the channel connection overview built from settings and the latest message per channel."""

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from sqlalchemy import func, select
from sqlmodel import col

from helpdesk.auth.dependencies import Admin, CurrentUser
from helpdesk.config import Settings, SettingsDep
from helpdesk.db import ReadSessionDep
from helpdesk.inboxes import service as inbox_service
from helpdesk.tickets.models import Channel, Direction, Message
from helpdesk.web import templating

router = APIRouter(include_in_schema=False)
FAVICON = Path(__file__).resolve().parent.parent.parent / "static" / "favicon.ico"


@router.get("/favicon.ico")
async def favicon() -> Response:
    """The tab icon, where browsers look for it without being told."""
    return FileResponse(FAVICON, media_type="image/x-icon",
                        headers={"Cache-Control": "public, max-age=604800"})


@router.get("/calls")
async def calls_page(request: Request, user: CurrentUser, settings: SettingsDep) -> Response:
    """The caller log: missed calls first to mark done, and the wrap-up form."""
    context = {"phone_connected": channel_setup(settings)["phone"]}
    return templating.render(request, "calls.html", context, user=user)


@router.get("/admin/cti")
async def cti_page(request: Request, session: ReadSessionDep, admin: Admin,
                   settings: SettingsDep) -> Response:
    """Blocked caller ids, the outbound routing table, and links to each inbox's voice menu."""
    context = {"phone_connected": channel_setup(settings)["phone"],
               "inboxes": await inbox_service.inboxes_by_id(session, None)}
    return templating.render(request, "admin/cti.html", context, user=admin)


def channel_setup(settings: Settings) -> dict[str, bool]:
    """Which channels have what they need configured (secrets are never shown)."""
    return {
        "email": bool(settings.smtp_url and (settings.smtp_listen or settings.imap_url
                                             or settings.inbound_token)),
        "chat": True,
        "line": bool(settings.line_channel_secret and settings.line_channel_access_token),
        "messenger": bool(settings.meta_app_secret and settings.meta_verify_token),
        "instagram": bool(settings.meta_app_secret and settings.meta_verify_token),
        "whatsapp": bool(settings.meta_app_secret and settings.meta_verify_token),
        "sms": bool(settings.twilio_account_sid and settings.twilio_auth_token),
        "phone": bool((settings.twilio_account_sid and settings.twilio_auth_token)
                      or settings.cti_token),
        "api": bool(settings.inbound_token),
    }


@router.get("/admin/channels")
async def channels_page(
    request: Request, session: ReadSessionDep, admin: Admin, settings: SettingsDep
) -> Response:
    """Each channel: configured or not, and when it last brought a message in."""
    rows = await session.execute(
        select(col(Message.channel), func.max(Message.created_at))
        .where(col(Message.direction) == Direction.inbound).group_by(col(Message.channel)))
    last = {str(channel): at for channel, at in rows.all()}
    context = {"channels": list(Channel), "setup": channel_setup(settings), "last": last,
               "public_url": settings.public_url}
    return templating.render(request, "admin/channels.html", context, user=admin)
