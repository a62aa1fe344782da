"""Alembic migrations; ``run_upgrade`` applies them to a database URL."""

from pathlib import Path

from alembic import command
from alembic.config import Config

HERE = Path(__file__).resolve().parent


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at this folder and ``database_url``."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def run_upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (blocking: call from a thread inside a loop)."""
    command.upgrade(alembic_config(database_url), revision)
