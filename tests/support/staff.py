"""Staff accounts for tests, each signed in once through the API and once in a browser."""

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth import service as auth
from helpdesk.auth.models import Role, SessionKind, User
from helpdesk.inboxes import service as inbox_service
from helpdesk.storage.sessions import begin_write
from tests.support.server import SECRET

PASSWORD = "correct horse battery"
TTL = 12 * 3600

# What Staff signed each user in with, by user id: a bearer token and a page session cookie,
# each naming a live server-side session (ids start over with each emptied database).
_CREDENTIALS: dict[int, tuple[str, str]] = {}


@dataclass
class Staff:
    """Creates staff accounts, signed in once through the API and once in a browser."""

    session: AsyncSession
    made: list[User] = field(default_factory=list)

    async def create(self, name: str = "op", role: Role = Role.operator,
                     inboxes: list[str] | None = None) -> User:
        await begin_write(self.session)
        user = await auth.create_user(self.session, email=f"{name}@example.com", name=name,
                                      role=role, password=PASSWORD)
        assert user.id is not None
        await inbox_service.join_named(self.session, user_id=user.id, names=inboxes or [])
        api, browser = [await auth.sign_in(self.session, secret_key=SECRET, user=user, kind=kind,
                                           ttl_seconds=TTL)
                        for kind in (SessionKind.api, SessionKind.browser)]
        await self.session.commit()
        assert user.id is not None
        _CREDENTIALS[user.id] = (api, browser)
        self.made.append(user)
        return user

    @staticmethod
    def token(user: User) -> str:
        """The user's bearer token."""
        assert user.id is not None
        return _CREDENTIALS[user.id][0]

    @staticmethod
    def cookie(user: User) -> str:
        """The user's session cookie value."""
        assert user.id is not None
        return _CREDENTIALS[user.id][1]

    @classmethod
    def headers(cls, user: User) -> dict[str, str]:
        return {"Authorization": f"Bearer {cls.token(user)}"}
