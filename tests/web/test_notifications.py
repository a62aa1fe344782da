"""Desktop and sound notifications: off by default, turned on per user on /me."""

from playwright.async_api import expect

from helpdesk.auth.models import Role
from helpdesk.db import utcnow
from tests.support.browser import Tabs
from tests.support.staff import Staff

# The browser's own Notification and audio, recorded at their boundary (what the page asks of them).
RECORD = """
window.__notes = [];
window.Notification = function (title, options) {
  window.__notes.push([title, options && options.body]); this.close = () => {}; };
window.Notification.permission = 'granted';
window.Notification.requestPermission = () => Promise.resolve('granted');
window.__tones = 0;
const create = AudioContext.prototype.createOscillator;
AudioContext.prototype.createOscillator = function () { window.__tones += 1; return create.call(this); };
"""


def created(ticket_id: int, subject: str) -> dict[str, object]:
    return {"seq": 999_000 + ticket_id, "type": "ticket.created", "at": utcnow().isoformat(),
            "data": {"ticket": {"id": ticket_id, "subject": subject, "status": "unhandled"}}}


async def test_notifications_are_opt_in_and_then_announce_tickets_and_calls(
        tabs: Tabs, staff: Staff) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    tab = await tabs.open(sato)
    await tab.context.add_init_script(RECORD)
    await tab.goto("/calls")
    await tab.deliver([created(1, "配送について")])
    await tab.page.wait_for_timeout(200)
    assert await tab.page.evaluate("[window.__notes.length, window.__tones]") == [0, 0]

    await tab.goto("/me")
    await tab.page.check("#notify-form input[name=desktop]")
    await tab.page.check("#notify-form input[name=sound]")
    await expect(tab.page.locator("#notify-status")).to_have_text("このブラウザに保存しました。")
    await tab.goto("/calls")
    await tab.deliver([created(2, "返品について")])
    await tab.page.wait_for_function("window.__notes.length === 1")
    assert await tab.page.evaluate("window.__notes") == [["新しいチケット", "返品について"]]
    assert await tab.page.evaluate("window.__tones") == 1
    await tab.deliver([{"seq": 999_100, "type": "call.ringing", "at": utcnow().isoformat(),
                        "data": {"call": {"id": 7, "call_id": "c-7", "from": "+819010727576",
                                          "state": "ringing"},
                                 "caller": {"display": "090-1072-7576", "name": "山田 太郎"}}}])
    await tab.page.wait_for_function("window.__notes.length === 2")
    assert (await tab.page.evaluate("window.__notes"))[1] == ["着信", "山田 太郎"]
    assert await tab.page.evaluate("window.__tones") == 4  # three beeps for a ring
    tab.assert_clean()
