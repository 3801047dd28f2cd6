"""The data home's own files: the folders, and the key file older homes kept.

The key that signs session cookies now lives in the database (kb.app.service), so every
node sharing one accepts the sessions of the others; a home made by an earlier version
keeps its ``secret_key`` file (mode 0600), whose key the database adopts, so sessions
made before an upgrade stay valid. ``KB_SECRET_KEY`` replaces both.
"""

from __future__ import annotations

from pathlib import Path

from kb.config import Config
from kb.errors import ConfigError

KEY_FILE = "secret_key"


def prepare_home(config: Config) -> None:
    """Create the home and its index folder."""
    config.home_path.mkdir(parents=True, exist_ok=True)
    config.index_root.mkdir(exist_ok=True)


def legacy_key(config: Config) -> str | None:
    """The key of a home's ``secret_key`` file, when an earlier version made one."""
    try:
        return _read_key(config.home_path / KEY_FILE)
    except (FileNotFoundError, ConfigError):
        return None


def _read_key(path: Path) -> str:
    key = path.read_text().strip()
    if not key:
        raise ConfigError(f"{path} is empty: delete it and run `kb init` to make a new session key")
    return key
