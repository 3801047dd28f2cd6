"""The data home's own files: the folders, and the key that signs session cookies.

The key is made once, with the home, and kept in it (``secret_key``, mode 0600): every
worker and every later start signs and checks sessions with the same key, so a session
made by one worker is accepted by all. ``KB_SECRET_KEY`` replaces it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from kb.config import Config
from kb.errors import ConfigError

KEY_FILE = "secret_key"


def prepare_home(config: Config) -> None:
    """Create the home and its index folder, and the session key if there is none."""
    config.home_path.mkdir(parents=True, exist_ok=True)
    config.index_root.mkdir(exist_ok=True)
    session_key(config)


def session_key(config: Config) -> str:
    """The key that signs session cookies: ``KB_SECRET_KEY``, else the home's key file,
    created on first use. Two processes creating it at once agree: one writes it (the
    file appears whole, by rename) and both read that one."""
    if config.secret_key:
        return config.secret_key
    path = config.home_path / KEY_FILE
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    try:
        config.home_path.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        try:
            os.link(staging, path)  # fails if another process made it first: theirs wins
        except FileExistsError:
            pass
        finally:
            staging.unlink()
        return _read_key(path)
    except OSError as exc:
        raise ConfigError(f"cannot create the session key in {config.home_path}: {exc.strerror} "
                          "(run `kb init`, or set KB_SECRET_KEY)") from None


def _read_key(path: Path) -> str:
    key = path.read_text().strip()
    if not key:
        raise ConfigError(f"{path} is empty: delete it and run `kb init` to make a new session key")
    return key
