"""Wiring the HTML side into the app: middlewares, error pages and toasts, every views router."""

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from helpdesk.access import views as access_views
from helpdesk.approval import views as approval_views
from helpdesk.assignment import views as assignment_views
from helpdesk.audit import views as audit_views
from helpdesk.auth import account_views
from helpdesk.auth import views as auth_views
from helpdesk.auth.dependencies import SESSION_COOKIE
from helpdesk.calls import views as calls_views
from helpdesk.config import Settings
from helpdesk.customers import views as customers_views
from helpdesk.errors import error_response
from helpdesk.imports import views as imports_views
from helpdesk.inboxes import views as inboxes_views
from helpdesk.replies import signature_views
from helpdesk.replies import views as replies_views
from helpdesk.reports import views as reports_views
from helpdesk.sla import views as sla_views
from helpdesk.tickets import attachment_views as tickets_attachment_views
from helpdesk.tickets import inbox_views as tickets_inbox_views
from helpdesk.tickets import views as tickets_views
from helpdesk.web import i18n, templating
from helpdesk.web import views as web_views
from helpdesk.web.csrf import CSRFMiddleware
from helpdesk.web.security import AllowList, IpAllowMiddleware, SecurityHeadersMiddleware

ROUTERS = (auth_views, account_views, tickets_inbox_views, tickets_views, customers_views, reports_views,
           inboxes_views, replies_views, access_views, audit_views, calls_views, web_views, approval_views,
           assignment_views, sla_views, imports_views, signature_views, tickets_attachment_views)


def html_error(request: Request, status: int, detail: str) -> Response:
    """Sign-in for 401, a toast for htmx, an error page otherwise."""
    if status == 401:
        target = "/login?next=" + quote(request.url.path, safe="/")
        return templating.redirect(request, target)
    context = {"status": status, "detail": detail}
    if templating.is_htmx(request):
        return templating.render(request, "error.html", context, user=None, status=status,
                                 block="toast", headers={"HX-Retarget": "#toasts",
                                                         "HX-Reswap": "beforeend"})
    return templating.render(request, "error.html", context, user=None, status=status)


async def _refuse_csrf(scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope, receive)
    response = error_response(request, 403, "the form expired or did not come from this site; "
                                            "reload the page and try again")
    await response(scope, receive, send)


async def _refuse_address(scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope, receive)
    response = error_response(request, 403, "your network address is not allowed")
    await response(scope, receive, send)


async def startup(app: FastAPI) -> None:
    """Read what the middlewares need before the first request (the IP allow-list)."""
    await app.state.allow_list.load(app.state.read_sessionmaker)


def install(app: FastAPI, settings: Settings) -> None:
    """Add the page routers, the error renderer and the security middlewares."""
    app.state.html_error = html_error
    app.state.allow_list = AllowList()
    i18n.translations("ja")  # read the catalogue at start, not on the first page
    for module in ROUTERS:
        app.include_router(module.router)
    secure = settings.public_url.startswith("https://")
    app.add_middleware(CSRFMiddleware, secret=settings.secret_key, session_cookie=SESSION_COOKIE,
                       refuse=_refuse_csrf, secure=secure)
    app.add_middleware(IpAllowMiddleware, refuse=_refuse_address)
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)
