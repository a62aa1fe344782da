"""What an import reports back, and an import started from the admin pages while it runs."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, computed_field
from sqlalchemy import JSON, Column
from sqlmodel import Field as TableField
from sqlmodel import SQLModel

from helpdesk.db import utcnow
from helpdesk.storage.types import UTCDateTime


class RowProblem(BaseModel):
    line: int
    reason: str


class ImportSummary(BaseModel):
    """Counts of one import; ``problems`` lists skipped lines with the reason for each."""

    kind: str
    layout: str = ""
    source: str = ""
    encoding: str = ""
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    problems: list[RowProblem] = Field(default_factory=list)
    problems_truncated: bool = False

    @computed_field  # type: ignore[prop-decorator]
    @property
    def imported(self) -> int:
        """Records written: created or updated."""
        return self.created + self.updated


class ImportRun(SQLModel, table=True):
    """An upload being imported: how far it has read, then its summary or why it stopped.

    Kept in the database so that any worker process answers the page's progress polls.
    """

    __tablename__ = "import_run"

    id: int | None = TableField(default=None, primary_key=True)
    kind: str = TableField(max_length=20)
    filename: str = TableField(default="", max_length=255)
    user_id: int = TableField(foreign_key="user.id", ondelete="CASCADE")
    total_bytes: int = TableField(default=0)
    done_bytes: int = TableField(default=0)
    state: str = TableField(default="running", max_length=10)  # running | done | failed
    summary: dict[str, Any] | None = TableField(default=None, sa_column=Column(JSON, nullable=True))
    error: str | None = TableField(default=None, max_length=500)
    started_at: datetime = TableField(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = TableField(default=None, sa_type=UTCDateTime)
