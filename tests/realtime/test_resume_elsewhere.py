"""A socket that resumes on a worker whose hub has not yet passed on the seq it resumes after (the
socket's previous worker was further along) gets nothing twice and nothing skipped."""

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role
from tests.realtime.conftest import ServerFactory
from tests.support.inbound import post_inbound
from tests.support.sockets import committed_events, frames_until, open_socket, quiet
from tests.support.staff import Staff


def work(frames: list[dict]) -> list[dict]:
    return [f for f in frames if f["type"] != "presence.changed"]


async def test_resuming_on_a_worker_that_is_behind_repeats_nothing(
        live_servers: ServerFactory, client_for, staff: Staff, db: AsyncSession) -> None:
    # No bus between them and polling slowed to a crawl: b's hub stays behind a's commits.
    a, b = live_servers(event_poll_seconds=60.0), live_servers(event_poll_seconds=60.0)
    boss = await staff.create("boss", Role.supervisor)
    token = Staff.token(boss)
    async with open_socket(b, token):  # b's hub is ready, at the log's end
        pass
    async with open_socket(a, token, after=0) as on_a:
        await post_inbound(client_for(a), "ahead-1")
        seen = work(await frames_until(on_a, lambda f: any(x["type"] == "message.created" for x in f)))
    last = seen[-1]["seq"]
    assert b.server.config.app.state.hub.last_seq < last  # b has not passed it on
    async with open_socket(b, token, after=last) as on_b:
        assert work(await quiet(on_b, 0.5)) == []  # nothing up to ``last`` again
        await post_inbound(client_for(b), "after-1")
        more = work(await frames_until(on_b, lambda f: any(x["type"] == "message.created" for x in work(f))))
    everything = [(e.seq, e.type) for e in await committed_events(db) if e.type != "presence.changed"]
    assert [(f["seq"], f["type"]) for f in seen + more] == everything
