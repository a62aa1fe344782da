"""Text that search looks through: one row per message, subject, customer and order."""

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel


class SearchEntry(SQLModel, table=True):
    """Indexed by FTS5 trigram on SQLite and pg_trgm on PostgreSQL (see the migration)."""

    __tablename__ = "search_entry"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)
    ref_id: int = Field()
    ticket_id: int | None = Field(default=None, index=True)
    customer_id: int | None = Field(default=None, index=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
