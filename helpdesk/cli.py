"""The ``helpdesk`` command: serve, migrate, create users."""

import argparse
import asyncio
import errno
import multiprocessing
import os
import socket
import sys

from helpdesk.config import Settings, get_settings
from helpdesk.db import create_engine
from helpdesk.errors import HelpdeskError
from helpdesk.realtime.log import event_sessions


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        sys.exit(2)
    try:
        args.handler(args, get_settings())
    except HelpdeskError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="helpdesk", description=__doc__)
    commands = parser.add_subparsers()
    serve = commands.add_parser("serve", help="run the web server (migrates first)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=int(os.environ.get("HELPDESK_PORT") or 8000),
                       help="the port to listen on (default: $HELPDESK_PORT, else 8000)")
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--demo", action="store_true", help="load demo data into an empty database")
    serve.set_defaults(handler=_serve)
    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(handler=lambda _a, s: run_upgrade(s.database_url))
    user = commands.add_parser("user", help="manage staff accounts").add_subparsers()
    create = user.add_parser("create", help="create a staff account")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--role", choices=["operator", "supervisor", "admin"], default="operator")
    create.add_argument("--password", required=True)
    create.add_argument("--inbox", action="append", default=[], help="inbox name (repeatable)")
    create.set_defaults(handler=_create_user)
    imports = commands.add_parser("import", help="import customers or orders from CSV")
    imports.add_argument("kind", choices=["customers", "orders"])
    imports.add_argument("file", help="a CSV export: UTF-8 (with or without BOM) or Shift_JIS")
    imports.add_argument("--map", default=None,
                         help="columns for other layouts, e.g. 'email=メールアドレス,phone=電話番号'")
    imports.add_argument("--source", default=None, help="the orders' platform (default: detected)")
    imports.set_defaults(handler=_import)
    reports = commands.add_parser("reports", help="report rollups").add_subparsers()
    rebuild = reports.add_parser("rebuild", help="recompute the report rollups from the event log")
    rebuild.add_argument("--force", action="store_true",
                         help="rebuild even though retention pruned the log's oldest events")
    rebuild.set_defaults(handler=_rebuild_reports)
    backup = commands.add_parser("backup", help="write a consistent copy of the live database")
    backup.add_argument("file")
    backup.set_defaults(handler=_backup)
    restore = commands.add_parser("restore", help="put a backup back (stop the server first)")
    restore.add_argument("file")
    restore.set_defaults(handler=_restore)
    return parser


def run_upgrade(database_url: str) -> None:
    """Bring the database to the latest migration (Alembic is imported only here: see _serve)."""
    from helpdesk.migrations import run_upgrade as upgrade

    upgrade(database_url)


def _rebuild_reports(args: argparse.Namespace, settings: Settings) -> None:
    from helpdesk.realtime import log as event_log
    from helpdesk.reports import tasks as report_tasks
    from helpdesk.reports.calendar import report_calendar

    async def rebuild() -> int:
        engine = create_engine(settings.database_url)
        try:
            sessions = event_sessions(engine)
            async with sessions() as session:
                pruned = await event_log.pruned_through(session)
                calendar = await report_calendar(session)
            if pruned and not args.force:
                print(f"error: retention deleted the events up to seq {pruned}; a rebuild would "
                      "lose the days they covered (pass --force to rebuild anyway)", file=sys.stderr)
                sys.exit(1)
            return await report_tasks.rebuild(sessions, calendar)
        finally:
            await engine.dispose()

    run_upgrade(settings.database_url)
    print(f"report rollups rebuilt from {asyncio.run(rebuild())} events")


def _backup(args: argparse.Namespace, settings: Settings) -> None:
    from pathlib import Path

    from helpdesk.backups import service as backups

    source = backups.sqlite_path(settings.database_url)
    if source is None:
        print(backups.postgresql_advice(settings.database_url, args.file, restore=False))
        sys.exit(2)
    size = backups.backup(source, Path(args.file))
    print(f"backup written to {args.file} ({size:,} bytes, integrity ok)")


def _restore(args: argparse.Namespace, settings: Settings) -> None:
    from pathlib import Path

    from helpdesk.backups import service as backups

    target = backups.sqlite_path(settings.database_url)
    if target is None:
        print(backups.postgresql_advice(settings.database_url, args.file, restore=True))
        sys.exit(2)
    kept = backups.restore(Path(args.file), target)
    run_upgrade(settings.database_url)
    print(f"restored {args.file} to {target}" + (f"; the previous database is in {kept}" if kept else ""))


def _import(args: argparse.Namespace, settings: Settings) -> None:
    from helpdesk.imports import cli as import_cli

    run_upgrade(settings.database_url)
    sys.exit(import_cli.run(args.kind, args.file, settings, mapping=args.map, source=args.source))


# The demo's provider tokens, so the screen pop (CTI) and /api/inbound answer from the start.
DEMO_TOKENS = {"cti_token": "demo-cti", "inbound_token": "demo-inbound"}


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    _refuse_taken_port(args.host, args.port)
    defaults = _serve_defaults(args, settings)
    os.environ.update(defaults)  # the app (and every worker) reads its settings afresh
    _prepare_in_child(demo=args.demo)
    if args.demo:
        print("demo data: sign in as admin@example.com / sato@example.com, password helpdesk-demo")
        url = os.environ["HELPDESK_PUBLIC_URL"]
        print(f"demo CTI: POST {url}/telephony/cti/{os.environ['HELPDESK_CTI_TOKEN']}; "
              f"inbound API token: {os.environ['HELPDESK_INBOUND_TOKEN']}")
    from helpdesk.app import SERVER_OPTIONS

    uvicorn.run("helpdesk.app:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, proxy_headers=True, **SERVER_OPTIONS)


def _serve_defaults(args: argparse.Namespace, settings: Settings) -> dict[str, str]:
    """Settings the command line implies: the public URL of the port served (unless set), and
    for the demo, provider tokens (unless set)."""
    defaults = {}
    if "public_url" not in settings.model_fields_set:
        host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
        defaults["HELPDESK_PUBLIC_URL"] = f"http://{host}:{args.port}"
    else:
        defaults["HELPDESK_PUBLIC_URL"] = settings.public_url
    if args.demo:
        for name, token in DEMO_TOKENS.items():
            defaults[f"HELPDESK_{name.upper()}"] = getattr(settings, name) or token
    return defaults


def _refuse_taken_port(host: str, port: int) -> None:
    """Say plainly that the port is taken, and how to choose another, rather than Errno 98."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            print(f"error: port {port} on {host} is already in use (another helpdesk or another "
                  f"program). Choose another: helpdesk serve --port {port + 1}, "
                  f"./scripts/dev --port {port + 1} or HELPDESK_PORT={port + 1} ./scripts/dev",
                  file=sys.stderr)
            sys.exit(1)


def _prepare_in_child(*, demo: bool) -> None:
    """Migrate (and load the demo) in a child process, then serve from this one.

    Alembic, the migration scripts and what the demo loads would otherwise stay in the serving
    process for its whole life (about 8 MiB of every worker's memory, which the idle-socket
    budget counts). The child reads the same settings from the environment.
    """
    child = multiprocessing.get_context("spawn").Process(target=_prepare, args=(demo,),
                                                         name="helpdesk-migrate")
    child.start()
    child.join()
    if child.exitcode != 0:
        sys.exit(child.exitcode or 1)


def _prepare(demo: bool) -> None:
    settings = get_settings()
    try:
        run_upgrade(settings.database_url)
        if demo:
            asyncio.run(_load_demo(settings))
    except HelpdeskError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(1)


async def _load_demo(settings: Settings) -> None:
    from helpdesk import demo

    engine = create_engine(settings.database_url)
    async with event_sessions(engine)() as session:
        if not await demo.has_data(session):
            await demo.load(session)
            await session.commit()
    await engine.dispose()


def _create_user(args: argparse.Namespace, settings: Settings) -> None:
    from helpdesk.auth import service as auth
    from helpdesk.auth.models import Role
    from helpdesk.inboxes import service as inbox_service

    async def create() -> None:
        engine = create_engine(settings.database_url)
        try:
            async with event_sessions(engine)() as session:
                user = await auth.create_user(
                    session, email=args.email, name=args.name, role=Role(args.role),
                    password=args.password)
                assert user.id is not None
                await inbox_service.join_named(session, user_id=user.id, names=args.inbox or [])
                await session.commit()
                print(f"created user {user.id} <{user.email}> ({user.role})")
        finally:
            await engine.dispose()

    run_upgrade(settings.database_url)
    asyncio.run(create())


if __name__ == "__main__":
    main()
