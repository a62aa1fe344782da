"""Jinja2 pages: one template per page, htmx requests get a named block of it."""

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, Template, pass_context, select_autoescape
from markupsafe import Markup

from helpdesk import normalize
from helpdesk.auth.models import User
from helpdesk.config import DEFAULT_REGION, Settings
from helpdesk.html import inert
from helpdesk.sla import display as sla_display
from helpdesk.tickets import photos
from helpdesk.tickets.models import Status
from helpdesk.web import csrf, i18n, messages

TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates"
HTMX_VERSION = "2.0.11"
# The integrity of dist/htmx.min.js in the htmx.org npm package, the file vendored in static/vendor.
HTMX_INTEGRITY = "sha384-2OatzQy1H+Zd/IIrjr1TcuDGqLXeHhbooAyJY1KdQMKnr4LZ22k31GBLdYKHmVjg"

def status_label(status: str) -> str:
    """A status in the viewer's language (未対応 / Unhandled …)."""
    name = messages.STATUS_NAMES.get(str(status))
    return i18n.gettext(name) if name else str(status)


def translated_detail(status: int, detail: str) -> tuple[str, str | None]:
    """An error's text for people: its translation, or the status's message plus the raw detail."""
    text = i18n.gettext(detail)
    if text != detail or i18n.current().language == "en":
        return text, None
    return i18n.gettext(messages.BY_STATUS.get(status, messages.BY_STATUS[400])), detail


def sanitized(html: str | None) -> Markup:
    """Customer HTML cleaned again at render time: stored rows are never trusted as markup."""
    if not html:
        return Markup("")
    return Markup(inert(html))


@pass_context
def _phone(context: Any, value: str | None) -> str:
    """A stored phone number in the way the deployment's readers write it (090-1072-7576)."""
    return normalize.phone_for_people(value, context.get("phone_region") or DEFAULT_REGION)


def _per_render(function: Callable[..., str]) -> Callable[..., str]:
    """A filter Jinja must call at render time: its result depends on the viewer's language, so
    it may not be folded into the compiled template as a constant."""

    @pass_context
    def filtered(_context: object, *args: Any, **kwargs: Any) -> str:
        return function(*args, **kwargs)

    return filtered


@cache
def environment() -> Environment:
    """The one template environment; gettext reads the locale of the render in progress."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
        extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True,
    )
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(dt=_per_render(i18n.format_dt), day=_per_render(i18n.format_day),
                       age=_per_render(i18n.format_age),
                       money=_per_render(i18n.format_money), number=_per_render(i18n.format_number),
                       status_label=_per_render(status_label), t=_per_render(i18n.gettext),
                       sanitized=sanitized, isodt=datetime.fromisoformat,
                       time_left=sla_display.time_left, phone=_phone)
    env.globals.update(statuses=list(Status), languages=i18n.LANGUAGES,
                       translated_detail=translated_detail, is_photo=photos.is_photo)
    env.globals["m"] = env.get_template("_macros.html").module
    return env


def is_htmx(request: Request) -> bool:
    """Whether htmx sent this request."""
    return request.headers.get("hx-request") == "true"


def locale_for(request: Request, user: User | None) -> i18n.Locale:
    """The signed-in user's language and zone, else the cookie's or the browser's language."""
    if user is not None:
        return i18n.Locale(i18n.language_or_default(user.language), user.timezone)
    cookie = request.cookies.get(i18n.LANG_COOKIE)
    language = cookie if cookie in i18n.LANGUAGES else i18n.from_accept_language(
        request.headers.get("accept-language"))
    return i18n.Locale(language)


def base_context(request: Request, user: User | None) -> dict[str, Any]:
    """What every page's layout needs."""
    settings: Settings = request.app.state.settings
    cdn = settings.htmx_cdn_url
    return {
        "request": request, "user": user, "csrf_token": csrf.token_for(request),
        "lang": i18n.current().language, "path": request.url.path,
        "htmx_cdn": cdn, "htmx_integrity": HTMX_INTEGRITY,
        "twilio_enabled": bool(settings.twilio_account_sid), "phone_region": settings.default_region,
    }


def _block_name(request: Request, template: Template) -> str | None:
    target = request.headers.get("hx-target", "").replace("-", "_")
    return target if target in template.blocks else None


def render_string(
    request: Request, name: str, context: Mapping[str, Any], *, user: User | None,
    block: str | None = None, oob: Iterable[str] = (),
) -> str:
    """The page, or one block of it (plus out-of-band blocks), as a string."""
    i18n.activate(locale_for(request, user))
    template = environment().get_template(name)
    values = {**base_context(request, user), **context}
    if block is None and is_htmx(request):
        block = _block_name(request, template)
    if block is None:
        return template.render(values)
    parts = ["".join(template.blocks[block](template.new_context(values)))]
    for extra in oob:
        ctx = template.new_context({**values, "oob": True})
        parts.append("".join(template.blocks[extra](ctx)))
    return "".join(parts)


def render(
    request: Request, name: str, context: Mapping[str, Any] | None = None, *,
    user: User | None, status: int = 200, block: str | None = None, oob: Iterable[str] = (),
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """An HTML response of the page, or of the block htmx targets."""
    html = render_string(request, name, context or {}, user=user, block=block, oob=oob)
    response = HTMLResponse(html, status_code=status, headers=dict(headers or {}))
    response.headers["Vary"] = "HX-Request, HX-Target"
    if user is not None and request.cookies.get(i18n.LANG_COOKIE) != user.language:
        # Error pages know no user: they read the language from this cookie.
        response.set_cookie(i18n.LANG_COOKIE, user.language, max_age=365 * 86400, samesite="lax",
                            httponly=True, path="/")
    return response


def redirect(request: Request, url: str) -> Response:
    """A redirect that htmx follows as a full navigation (``HX-Redirect``)."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return Response(status_code=303, headers={"Location": url})
