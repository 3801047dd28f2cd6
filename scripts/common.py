"""What every command shares: the data home, the service, progress bars, errors."""

from __future__ import annotations

import functools
import getpass
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from kb.app.requests import Progress
from kb.config import Config, load_config
from kb.errors import KBError, storage_failure

_DIFFERENT_HOME = "the data home (default: $KB_HOME or ./kb_home)"
_DATABASE_URL = (
    "a shared PostgreSQL database, postgresql://USER@HOST:PORT/NAME (default: $KB_DATABASE_URL; "
    "empty: SQLite in the data home)"
)


def _where() -> str:
    """The data home the current command works on, for messages."""
    ctx = click.get_current_context(silent=True)
    app = ctx.find_object(AppContext) if ctx else None
    try:
        return str(app.config.home_path) if app else ""
    except KBError:
        return ""


def _database_url_set() -> bool:
    ctx = click.get_current_context(silent=True)
    app = ctx.find_object(AppContext) if ctx else None
    return bool(app and app.config.database_url)


class AppContext:
    def __init__(self, home: str | None, database_url: str | None = None):
        self.home_override = home
        self.database_url_override = database_url
        self.acting_as = ""
        self._config: Config | None = None
        self._service = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(
                home=self.home_override, database_url=self.database_url_override
            )
            self._config.check_database_url()
        return self._config

    def service(self):
        from kb.app.service import Service

        if self._service is None:
            self._service = Service(self.config)
        return self._service

    def require_home(self) -> None:
        """Commands other than init need a data home that exists. On a shared database
        the home holds only this node's local files and is made when missing; the
        database must answer (one line naming its host, never the password)."""
        if self.config.database_url:
            from kb.home import prepare_home

            prepare_home(self.config)
            self.service().store()
            return
        if not self.config.db_path.exists():
            raise KBError(
                f"no data home at {self.config.home_path}: run `kb init` first (or set --home / KB_HOME)"
            )

    def close(self) -> None:
        if self._service is not None:
            self._service.close()


pass_app = click.make_pass_decorator(AppContext)


def home_option(func: Callable) -> Callable:
    """--home and --database-url, on every command that opens the store."""
    func = click.option(
        "--database-url",
        "database_url",
        default=None,
        metavar="URL",
        help=_DATABASE_URL,
        expose_value=False,
        callback=_set_database_url,
        is_eager=True,
    )(func)
    return click.option(
        "--home",
        "home",
        default=None,
        metavar="PATH",
        help=_DIFFERENT_HOME,
        expose_value=False,
        callback=_set_home,
        is_eager=True,
    )(func)


def _set_database_url(ctx: click.Context, _param, value):
    if value:
        ctx.find_object(AppContext).database_url_override = value
    return value


def _set_home(ctx: click.Context, _param, value):
    if value:
        ctx.find_object(AppContext).home_override = value
    return value


def reports_errors(func: Callable) -> Callable:
    """Turn library errors into a one-line message on stderr and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except KBError as exc:
            raise click.ClickException(str(exc)) from None
        except BlockingIOError:
            where = "this database" if _database_url_set() else "this data home"
            raise click.ClickException(
                f"another `kb index` or `kb tune` is running on {where}"
            ) from None
        except FileNotFoundError as exc:
            raise click.ClickException(f"not found: {exc.filename or exc}") from None
        except Exception as exc:
            # A full disk or read-only storage met outside the store's own transactions
            # (index files, the database's journal): one line, not a traceback.
            failure = storage_failure(exc, _where())
            if failure is None:
                raise
            raise click.ClickException(str(failure)) from None

    return wrapper


def terminal_progress() -> Progress:
    """A click progress bar on a terminal; silence otherwise (logs, pipes, tests)."""
    if not sys.stderr.isatty():
        return Progress()
    state: dict[str, Any] = {}

    def start(label: str, total: int) -> None:
        finish()
        bar = click.progressbar(
            length=total, label=f"{label:<10}", file=sys.stderr, show_eta=True, show_percent=True
        )
        bar.__enter__()
        state["bar"] = bar

    def advance(n: int) -> None:
        if "bar" in state:
            state["bar"].update(n)

    def finish() -> None:
        bar = state.pop("bar", None)
        if bar is not None:
            bar.__exit__(None, None, None)

    return Progress(start=start, advance=advance, finish=finish)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def os_user() -> str:
    """The operating-system account running this process: the login name the environment
    gives ($LOGNAME, $USER), else the account database's name for this uid, else the uid."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError, ImportError):  # a uid without an account (some containers)
        name = ""
    return name.strip() or f"uid-{os.getuid()}"


def cli_person() -> str:
    """Who makes a change from the command line: --as NAME, else the OS user."""
    ctx = click.get_current_context(silent=True)
    app = ctx.find_object(AppContext) if ctx else None
    return (app.acting_as if app is not None and app.acting_as else "") or os_user()


def cli_actor() -> str:
    """Who runs a command, for the audit log: ``cli:`` and the person (:func:`cli_person`)."""
    return f"cli:{cli_person()}"


def set_acting_as(ctx: click.Context, _param, value):
    if value is not None:
        name = value.strip()
        if not name or len(name) > 100 or any(ord(c) < 32 or c == "\x7f" for c in name):
            raise click.BadParameter(
                "a name of 1 to 100 printable characters", ctx=ctx, param=_param
            )
        ctx.find_object(AppContext).acting_as = name
    return value


def actor_option(func: Callable) -> Callable:
    """--as NAME, on every command that changes accounts, tokens or records."""
    return click.option(
        "--as",
        "acting_as",
        default=None,
        metavar="NAME",
        expose_value=False,
        callback=set_acting_as,
        is_eager=True,
        help="Who makes this change, as the audit log records it (default: the OS user).",
    )(func)
