"""Every operation in ``/openapi.json``, fed generated (and deliberately wrong) input through real
HTTP: no answer is a 5xx, and every documented answer matches its schema. Bounded to a few
examples an operation, so a run takes about a minute or two on either database."""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import checks
from schemathesis.openapi import from_dict

from helpdesk.app import create_app
from helpdesk.auth.models import Role
from tests.support.server import LiveServer, make_settings
from tests.support.staff import Staff

EXAMPLES = int(os.environ.get("HELPDESK_TEST_SCHEMATHESIS_EXAMPLES", "30"))
CHECKS = [checks.not_a_server_error, checks.response_schema_conformance]


# The schema the app serves at /openapi.json, built without a server so that pytest can make one
# test per operation when it collects this file; the cases then go to the live server.
schema = from_dict(create_app(make_settings("sqlite+aiosqlite:///:memory:")).openapi())


@schemathesis.serializer("message/rfc822")
def _raw_mail(ctx: object, value: object) -> bytes:
    """``POST /webhooks/email`` takes a raw message: generated text is sent as its bytes."""
    return str(value).encode("utf-8", "replace")


@pytest.fixture
async def admin(staff: Staff) -> dict[str, str]:
    return Staff.headers(await staff.create("boss", role=Role.admin, inboxes=["default"]))


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_answers_match_the_schema(case: schemathesis.Case, admin: dict[str, str],
                                                       channel_server: LiveServer) -> None:
    case.call_and_validate(base_url=channel_server.url, headers=admin, checks=CHECKS, timeout=30)
