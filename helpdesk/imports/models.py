"""What an import reports back."""

from pydantic import BaseModel, Field, computed_field


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
