"""The SLA admin page: business hours, public holidays, closed days and targets per priority."""

from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from helpdesk.audit import service as audit
from helpdesk.auth.dependencies import Admin
from helpdesk.db import ReadSessionDep, SessionDep, utcnow
from helpdesk.errors import BadInput
from helpdesk.sla import service
from helpdesk.sla.hours import DAY_NAMES, Calendar, holiday_name
from helpdesk.sla.models import SlaConfig
from helpdesk.tickets.models import Priority
from helpdesk.web import templating

router = APIRouter(include_in_schema=False)
MAX_FIELD = 2000
MAX_CLOSED_RANGE = 400  # days one "from..to" line may close


def _context(config: SlaConfig, language: str, *, saved: bool = False) -> dict[str, Any]:
    by_priority = {t.priority.value: t for t in config.targets if t.channel is None}
    return {"config": config, "days": DAY_NAMES, "priorities": [p.value for p in Priority],
            "by_priority": by_priority, "overrides": [t for t in config.targets if t.channel is not None],
            "hours_text": {d: ", ".join(f"{a}-{b}" for a, b in config.hours.get(d, [])) for d in DAY_NAMES},
            "upcoming": upcoming_closures(service.calendar_of(config), utcnow().date(),
                                          language="en_US" if language == "en" else language),
            "saved": saved}


def upcoming_closures(calendar: Calendar, today: date, *, language: str,
                      days: int = 120) -> list[tuple[date, str | None]]:
    """Days the shop is shut in the coming ``days`` (weekends aside), with the holiday's name."""
    found = []
    for offset in range(days):
        day = today + timedelta(days=offset)
        if calendar.is_closed(day):
            found.append((day, holiday_name(calendar, day, language)))
    return found


@router.get("/admin/sla")
async def sla_page(request: Request, session: ReadSessionDep, admin: Admin) -> Response:
    """The SLA settings form."""
    config = await service.load_config(session)
    return templating.render(request, "admin/sla.html", _context(config, admin.language), user=admin)


@router.post("/admin/sla")
async def save_sla(request: Request, session: SessionDep, admin: Admin) -> Response:
    """Replace the SLA settings from the form (audited); the form again, with what was saved."""
    form = await request.form(max_files=0, max_fields=100)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if any(len(v) > MAX_FIELD for v in fields.values()):
        raise BadInput("a field is too long")
    current = await service.load_config(session)
    try:
        config = SlaConfig.model_validate(_from_form(fields, current))
    except ValidationError as error:
        first = error.errors()[0]
        raise BadInput(str(first.get("msg", "invalid")).removeprefix("Value error, ")) from None
    await service.save_config(session, config)
    audit.record(session, action="sla.update", actor_id=admin.id, actor_email=admin.email,
                 target_type="sla_settings", target_id=1)
    await session.commit()
    return templating.render(request, "admin/sla.html", _context(config, admin.language, saved=True),
                             user=admin,
                             block="sla_form")


def _from_form(fields: dict[str, str], current: SlaConfig) -> dict[str, Any]:
    targets: list[dict[str, Any]] = []
    for priority in Priority:
        first, following = fields.get(f"first_{priority}", ""), fields.get(f"next_{priority}", "")
        if first.strip() or following.strip():
            targets.append({"priority": priority.value, "first_response_minutes": _minutes(first),
                            "next_response_minutes": _minutes(following),
                            "resolution_minutes": _minutes(fields.get(f"resolution_{priority}", ""))})
    targets += [t.model_dump(mode="json") for t in current.targets if t.channel is not None]
    return {"timezone": fields.get("timezone", "").strip() or "Asia/Tokyo",
            "public_holidays": fields.get("public_holidays") or None,
            "hours": {d: _periods(fields.get(f"hours_{d}", "")) for d in DAY_NAMES},
            "closed_days": _closed_days(fields.get("closed_days", "")), "targets": targets}


def _minutes(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit():
        raise BadInput("targets: minutes are whole numbers")
    return int(text)


def _periods(text: str) -> list[list[str]]:
    """``"09:00-12:00, 13:00-18:00"`` as ``[["09:00", "12:00"], ["13:00", "18:00"]]``."""
    periods = []
    for part in text.replace("、", ",").split(","):
        if part.strip():
            bounds = [b.strip() for b in part.replace("〜", "-").replace("~", "-").split("-")]
            if len(bounds) != 2:
                raise BadInput("hours: write periods as 09:00-18:00")
            periods.append(bounds)
    return periods


def _closed_days(text: str) -> list[str]:
    """One day per line, or a range ``2026-12-29..2027-01-04`` (年末年始)."""
    days: list[str] = []
    for line in text.replace(",", "\n").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            if ".." in line:
                start, end = (date.fromisoformat(x.strip()) for x in line.split("..", 1))
                if not 0 <= (end - start).days <= MAX_CLOSED_RANGE:
                    raise ValueError(line)
                days += [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]
            else:
                days.append(date.fromisoformat(line).isoformat())
        except ValueError:
            raise BadInput(f"closed days: not a date or range: {line[:40]}") from None
    return days
