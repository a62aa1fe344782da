"""One settings object, read from the environment (prefix ``HELPDESK_``) or ``.env``."""

from functools import cached_property
from typing import Annotated, Literal

from fastapi import Depends, Request
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-insecure-secret-change-me"
# The country assumed where none is given: how phone numbers written without a country code are
# read and shown, and whose public holidays a new business calendar keeps.
DEFAULT_REGION = "JP"
RATE = r"^[1-9][0-9]*/[0-9]+(\.[0-9]+)?$"  # hits/seconds


class Settings(BaseSettings):
    """Everything configurable; safe by default, refusing placeholder secrets in production."""

    model_config = SettingsConfigDict(env_prefix="HELPDESK_", env_file=".env", extra="ignore")

    env: Literal["development", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///./helpdesk.db"
    redis_url: str | None = None
    secret_key: str = DEV_SECRET
    # Earlier values of secret_key, after rotating it: what they sealed (TOTP keys) still opens.
    previous_secret_keys: list[str] = []
    public_url: str = "http://127.0.0.1:8000"
    default_region: str = DEFAULT_REGION
    timezone: str = "Asia/Tokyo"

    token_ttl_seconds: int = 12 * 3600
    # Sign-in throttling: this many failures from one address against one account (known or
    # not) lock that address out of it for ``lockout_minutes``; the account itself is locked
    # only after ``account_lockout_failures`` failures from ``account_lockout_addresses``
    # addresses or more; each address may try ``login_attempts_per_minute`` sign-ins a minute.
    lockout_failures: int = Field(default=5, ge=1)
    lockout_minutes: int = Field(default=15, ge=1)
    account_lockout_failures: int = Field(default=50, ge=1)
    account_lockout_addresses: int = Field(default=5, ge=1)
    login_attempts_per_minute: int = Field(default=20, ge=1)
    max_body_bytes: int = 10 * 1024 * 1024
    # Files an operator attaches to one email reply: how many, their size in all (under
    # max_body_bytes, which bounds the whole form) and the name endings never sent.
    reply_attachments_max_files: int = Field(default=5, ge=0, le=50)
    reply_attachments_max_bytes: int = Field(default=8 * 1024 * 1024, ge=0)
    reply_attachments_blocked: list[str] = [
        ".exe", ".com", ".bat", ".cmd", ".scr", ".pif", ".msi", ".dll", ".vbs", ".js", ".jse",
        ".wsf", ".hta", ".cpl", ".jar", ".ps1", ".lnk", ".reg"]
    reopen_window_days: int = 14
    dormant_after_days: int = 180
    rank_refresh_seconds: int = 3600

    cti_token: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_api_base: str | None = None
    twilio_api_key: str | None = None
    twilio_api_secret: str | None = None
    twilio_twiml_app_sid: str | None = None
    twilio_ring_timeout: int = 20
    # Numbers SMS and WhatsApp replies are sent from when the ticket's inbox has no phone number
    # of its own (WhatsApp's is often a different sender from the voice and SMS number).
    twilio_sms_from: str | None = None
    twilio_whatsapp_from: str | None = None
    # After-call work: how long at most an operator doing it is kept from new calls, and the
    # outcome codes the wrap-up offers (known codes are shown translated, others as written).
    acw_limit_seconds: int = Field(default=120, ge=0, le=3600)
    call_dispositions: list[str] = ["resolved", "callback", "transferred", "no_action"]
    line_channel_secret: str | None = None
    line_channel_access_token: str | None = None
    line_api_base: str = "https://api.line.me"
    # LINE serves what users send (photos, videos, audio, files) from its own domain.
    line_data_api_base: str = "https://api-data.line.me"
    meta_app_secret: str | None = None
    meta_verify_token: str | None = None
    meta_api_base: str = "https://graph.facebook.com"
    shopify_webhook_secret: str | None = None
    smtp_url: str | None = None
    smtp_listen: str | None = None
    imap_url: str | None = None
    inbound_token: str | None = None
    # Channels: the token that sends on Messenger / Instagram / WhatsApp Cloud, the Graph API
    # version, the reply address used when an inbox has none, how often IMAP is polled.
    meta_access_token: str | None = None
    meta_graph_version: str = "v21.0"
    mail_from: str = "support@helpdesk.invalid"
    imap_poll_seconds: float = 60.0
    # Outbox: attempts before a message is marked failed; the first retry's delay (it doubles).
    outbox_max_attempts: int = 5
    outbox_backoff_seconds: float = 30.0
    # Media users send (LINE photos…) is downloaded after the webhook answers: at most this big
    # (larger is not stored; the message says so), tried this often, first retry after this
    # delay (it doubles; LINE answers 202 while a video or audio is still being prepared).
    media_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    media_fetch_max_attempts: int = Field(default=8, ge=1)
    media_fetch_backoff_seconds: float = Field(default=5.0, gt=0)
    # Where Messenger, Instagram and WhatsApp media may be downloaded from (these hosts and their
    # subdomains, HTTPS on public addresses only); the Graph API base above is always allowed.
    meta_media_hosts: list[str] = Field(default_factory=lambda: [
        "fbcdn.net", "fbsbx.com", "cdninstagram.com", "whatsapp.net", "facebook.com"])

    # Rate limits, "hits/seconds" in fixed windows (counted in Redis when HELPDESK_REDIS_URL is
    # set, so all processes share them): each webhook family per source address (providers
    # send from few addresses, so this only stops floods); the public chat per address (sockets
    # opened, messages and emails left) and per visitor (messages and emails left).
    rate_webhook: str = Field(default="3000/60", pattern=RATE)
    rate_chat_connect: str = Field(default="30/60", pattern=RATE)
    rate_chat_message_address: str = Field(default="120/60", pattern=RATE)
    rate_chat_message_visitor: str = Field(default="20/60", pattern=RATE)

    run_workers: bool = True
    # Empty (the default): pages load the htmx copy vendored in static/, never waiting on a third
    # party. A URL (such as https://cdn.jsdelivr.net/npm/htmx.org@2.0.11/dist/htmx.min.js): pages
    # load htmx from it, checked by its integrity hash, and fall back to the vendored copy; the
    # page waits for the CDN while it is slow or unreachable.
    htmx_cdn_url: str = ""

    # Realtime: the Redis channel prefix (several deployments may share one Redis), how long a
    # dropped connection keeps its user online, and the limits of one socket.
    redis_channel: str = "helpdesk"
    redis_reconnect_max_seconds: float = 5.0
    event_poll_seconds: float = 1.0
    presence_grace_seconds: float = 30.0
    ws_ping_seconds: float = 25.0
    ws_max_lifetime_seconds: float = 3600.0
    ws_queue_size: int = 256
    ws_resume_wait_seconds: float = 1.0

    # Retention: realtime events and sent or failed outbox items older than this are deleted (a
    # socket resuming from before them is told to resync); delivery receipts are kept well past
    # the providers' retry windows (Shopify retries for 48 hours). Deleted in batches this big,
    # a pass this often.
    event_retention_days: int = Field(default=30, ge=1)
    receipt_retention_days: int = Field(default=30, ge=7)
    retention_interval_seconds: float = Field(default=3600.0, gt=0)
    retention_batch: int = Field(default=1000, ge=1)

    # Assignment and SLA: how often past-due tickets are looked for, and how often offline
    # operators' tickets and tickets waiting for capacity are (re)assigned.
    sla_check_seconds: float = Field(default=30.0, gt=0)
    assignment_sweep_seconds: float = Field(default=10.0, gt=0)
    # Reports: how often the rollups fold new events from the log (a pass, when there is news).
    report_rollup_seconds: float = Field(default=2.0, gt=0)
    # Backups: with a directory set, a consistent SQLite copy is written there every day at
    # ``backup_at`` (local time, ``timezone``), keeping the newest ``backup_keep`` of them.
    backup_dir: str | None = None
    backup_at: str = Field(default="03:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    backup_keep: int = Field(default=7, ge=1)
    # /metrics: off unless enabled (and then behind the staff IP allow-list like every page).
    metrics_enabled: bool = True

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> "Settings":
        if self.env == "production" and (self.secret_key == DEV_SECRET or len(self.secret_key) < 32):
            raise ValueError("HELPDESK_SECRET_KEY must be set to a random value of 32+ characters")
        return self

    @cached_property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def get_settings() -> Settings:
    """Read settings afresh; the app keeps the instance it was built with."""
    return Settings()


async def app_settings(request: Request) -> Settings:
    """The settings the app was built with (async: a plain def would cost a thread hop per request)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(app_settings)]
