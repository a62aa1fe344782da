"""Reading and changing the IP allow-list, and checking an address against it."""

import ipaddress
from collections.abc import Iterable, Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import normalize
from helpdesk.access.models import IpRule
from helpdesk.errors import BadInput, Conflict

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(value: str) -> Network:
    """An address or CIDR block; 422 when it is neither."""
    try:
        return ipaddress.ip_network(normalize.nfkc(value).strip(), strict=False)
    except ValueError:
        raise BadInput("network: not an IP address or CIDR block") from None


def allows(networks: Sequence[Network], address: str | None) -> bool:
    """Whether ``address`` may reach staff pages: any address when the list is empty."""
    if not networks:
        return True
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in network for network in networks)


async def rules(session: AsyncSession) -> list[IpRule]:
    """Every entry, oldest first."""
    return list(await session.scalars(select(IpRule).order_by(col(IpRule.id))))


async def networks(session: AsyncSession) -> list[Network]:
    """The parsed allow-list."""
    return [ipaddress.ip_network(n, strict=False)
            for n in await session.scalars(select(col(IpRule.network)))]


async def add(session: AsyncSession, *, network: str, note: str, admin_ip: str | None) -> IpRule:
    """Allow a network; refused when the list would then shut out the admin adding it."""
    parsed = parse_network(network)
    if await session.scalar(select(col(IpRule.id)).where(col(IpRule.network) == str(parsed))):
        raise Conflict("that network is already allowed")
    _keep_admin_in(await networks(session), [parsed], admin_ip)
    rule = IpRule(network=str(parsed), note=note.strip()[:200])  # as the admin wrote it
    session.add(rule)
    await session.flush()
    return rule


async def remove(session: AsyncSession, *, rule_id: int, admin_ip: str | None) -> None:
    """Drop an entry; refused when the admin removing it would be shut out."""
    rule = await session.get(IpRule, rule_id)
    if rule is None:
        return
    remaining = [n for n in await networks(session) if str(n) != rule.network]
    if remaining:  # an empty list lets everyone in, the admin included
        _keep_admin_in(remaining, [], admin_ip)
    await session.execute(delete(IpRule).where(col(IpRule.id) == rule_id))


def _keep_admin_in(current: Iterable[Network], added: Iterable[Network], admin_ip: str | None) -> None:
    proposed = [*current, *added]
    if not allows(proposed, admin_ip):
        raise BadInput("this list would lock out your own address")
