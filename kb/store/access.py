"""API tokens and people who sign in. Only hashes are stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from kb.errors import ConflictError, ForbiddenError, NotFoundError, ValidationError
from kb.models import ROLES
from kb.store.base import utc_now

TOKEN_PREFIX = "kbt_"
# Accounts of people who sign in through the organisation have this instead of a password hash.
EXTERNAL_PREFIX = "external$"
_PBKDF2_ITERATIONS = 240_000


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    via: str  # "token" | "session"


def hash_token(token: str) -> str:
    # Tokens are 256 random bits, so one SHA-256 round is enough; passwords get PBKDF2.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, _PBKDF2_ITERATIONS)
    return f"pbkdf2_sha256${_PBKDF2_ITERATIONS}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "pbkdf2_sha256":
        return False
    digest = hashlib.pbkdf2_hmac(
        "sha256", password.encode("utf-8"), bytes.fromhex(salt_hex), int(iterations)
    )
    return hmac.compare_digest(digest.hex(), digest_hex)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValidationError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")


def _check_name(name: str) -> None:
    if not name or not name.strip() or len(name) > 100:
        raise ValidationError("a name of 1 to 100 characters is required")


class AccessMixin:
    def create_token(self, name: str, role: str, *, actor: str = "") -> str:
        """Create an API token; the plain token is returned once and never stored."""
        _check_name(name)
        _check_role(role)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.write():
            self.db["api_tokens"].insert(
                {
                    "name": name,
                    "role": role,
                    "token_hash": hash_token(token),
                    "created_at": utc_now(),
                    "revoked_at": None,
                }
            )
            self.audit(actor, "token create", name, f"role {role}")
        return token

    def principal_for_token(self, token: str) -> Principal | None:
        """The token's owner, or None. Looked up by hash, then compared in constant time."""
        if not token or len(token) > 200:
            return None
        digest = hash_token(token)
        rows = list(
            self.db["api_tokens"].rows_where(
                "token_hash = ? AND revoked_at IS NULL", [digest], limit=1
            )
        )
        if not rows or not hmac.compare_digest(rows[0]["token_hash"], digest):
            return None
        return Principal(rows[0]["name"], rows[0]["role"], "token")

    def list_tokens(self) -> list[dict[str, Any]]:
        """Every token by name, role, creation and revocation time (never a hash), oldest first."""
        rows = self.db.execute(
            "SELECT name, role, created_at, revoked_at FROM api_tokens ORDER BY created_at, name"
        ).fetchall()
        return [
            {
                "name": r[0],
                "role": r[1],
                "created_at": r[2] or "",
                "revoked_at": r[3] or None,
                "active": r[3] is None,
            }
            for r in rows
        ]

    def list_users(self) -> list[dict[str, Any]]:
        """Every local account by name, role, creation time and state (never a password hash)."""
        rows = self.db.execute(
            "SELECT name, role, created_at, disabled FROM users ORDER BY name"
        ).fetchall()
        return [
            {"name": r[0], "role": r[1], "created_at": r[2] or "", "disabled": bool(r[3])}
            for r in rows
        ]

    def revoke_tokens(self, name: str, *, actor: str = "") -> int:
        with self.write():
            cursor = self.db.execute(
                "UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                [utc_now(), name],
            )
            self.audit(actor, "token revoke", name, f"{cursor.rowcount} token(s)")
            return cursor.rowcount

    def create_user(self, name: str, role: str, password: str, *, actor: str = "") -> None:
        _check_name(name)
        _check_role(role)
        if len(password) < 8:
            raise ValidationError("a password needs at least 8 characters")
        with self.write():
            if list(self.db["users"].rows_where("name = ?", [name])):
                raise ConflictError(f"user {name!r} already exists")
            self.db["users"].insert(
                {
                    "name": name,
                    "role": role,
                    "password_hash": hash_password(password),
                    "created_at": utc_now(),
                    "disabled": 0,
                }
            )
            self.audit(actor, "user create", name, f"role {role}")

    def update_user(
        self, name: str, *, role: str | None = None, password: str | None = None, actor: str = ""
    ) -> None:
        if role is not None:
            _check_role(role)
        if password is not None and len(password) < 8:
            raise ValidationError("a password needs at least 8 characters")
        with self.write():
            if not list(self.db["users"].rows_where("name = ?", [name])):
                raise NotFoundError(f"no user {name!r}")
            changes = {}
            if role is not None:
                changes["role"] = role
            if password is not None:
                changes["password_hash"] = hash_password(password)
                changes["disabled"] = 0
            if changes:
                old_role = self.db.execute(
                    "SELECT role FROM users WHERE name = ?", [name]
                ).fetchone()[0]
                self.db["users"].update(name, changes)
                self._end_sessions(name)
                if role is not None and role != old_role:
                    self.audit(actor, "role change", name, f"{old_role} -> {role}")
                if password is not None:
                    self.audit(actor, "password change", name)

    def has_user(self, name: str) -> bool:
        """Whether the account exists, enabled or not."""
        return self.db.execute("SELECT 1 FROM users WHERE name = ?", [name]).fetchone() is not None

    def disable_user(self, name: str, *, actor: str = "") -> None:
        """The person can no longer sign in, and every session of theirs ends."""
        with self.write():
            if not list(self.db["users"].rows_where("name = ?", [name])):
                raise NotFoundError(f"no user {name!r}")
            self.db["users"].update(name, {"disabled": 1})
            self._end_sessions(name)
            self.audit(actor, "user disable", name)

    def end_sessions(self, name: str) -> None:
        with self.write():
            self._end_sessions(name)

    def _end_sessions(self, name: str) -> None:
        self.db.execute("UPDATE users SET session_epoch = session_epoch + 1 WHERE name = ?", [name])

    def session_epoch(self, name: str) -> int | None:
        """The number a valid session of this (enabled) user carries; None: no such user."""
        row = self.db.execute(
            "SELECT session_epoch FROM users WHERE name = ? AND disabled = 0", [name]
        ).fetchone()
        return int(row[0]) if row else None

    def authenticate_user(self, name: str, password: str) -> Principal | None:
        rows = list(self.db["users"].rows_where("name = ? AND disabled = 0", [name]))
        if not rows:
            # Spend the same time as a real check so names cannot be probed by timing.
            check_password(password, hash_password("x" * 8, salt=b"0" * 16))
            return None
        if not check_password(password, rows[0]["password_hash"]):
            return None
        return Principal(rows[0]["name"], rows[0]["role"], "session")

    # --- sign-in throttling -------------------------------------------------------------

    def sign_in_lockout(
        self, keys: list[str], *, limit: int, window: float, now: float | None = None
    ) -> float:
        """Seconds until a sign-in may be tried again for any of ``keys`` (0: now): a key
        with ``limit`` failures within the last ``window`` seconds is locked until the
        oldest of them leaves the window."""
        now = time.time() if now is None else now
        wait = 0.0
        for key in keys:
            rows = self.db.execute(
                "SELECT at FROM sign_in_failures WHERE key = ? AND at > ? ORDER BY at DESC LIMIT ?",
                [key, now - window, limit],
            ).fetchall()
            if len(rows) >= limit:
                wait = max(wait, rows[-1][0] + window - now)
        return wait

    def begin_sign_in(
        self, limits: dict[str, int], *, window: float, now: float | None = None
    ) -> tuple[float, list[int]]:
        """Count a sign-in attempt against each key before its password is checked, in one
        write transaction: (seconds to wait, []) when a key already holds its limit of
        failures (and attempts under way) in the window, else (0, the ids of the rows
        counted, for :meth:`sign_in_succeeded`). Attempts made at once all count, so no
        more than the limit are ever checked."""
        now = time.time() if now is None else now
        with self.write():
            wait = max(
                (
                    self.sign_in_lockout([key], limit=limit, window=window, now=now)
                    for key, limit in limits.items()
                ),
                default=0.0,
            )
            if wait > 0:
                return wait, []
            ids = [
                self.db.execute(
                    "INSERT INTO sign_in_failures (key, at) VALUES (?, ?) RETURNING id", [key, now]
                ).fetchone()[0]
                for key in limits
            ]
            self.db.execute("DELETE FROM sign_in_failures WHERE at < ?", [now - window])
            return 0.0, ids

    def sign_in_succeeded(self, ids: list[int], user_key: str) -> None:
        """The attempt counted by :meth:`begin_sign_in` was right: it and the name's earlier
        failures no longer count."""
        with self.write():
            for attempt in ids:
                self.db.execute("DELETE FROM sign_in_failures WHERE id = ?", [attempt])
            self.db.execute("DELETE FROM sign_in_failures WHERE key = ?", [user_key])

    def record_sign_in_failure(
        self, keys: list[str], *, window: float, now: float | None = None
    ) -> None:
        now = time.time() if now is None else now
        with self.write():
            self._executemany(
                "INSERT INTO sign_in_failures (key, at) VALUES (?, ?)", [(key, now) for key in keys]
            )
            self.db.execute("DELETE FROM sign_in_failures WHERE at < ?", [now - window])

    def clear_sign_in_failures(self, key: str) -> None:
        with self.write():
            self.db.execute("DELETE FROM sign_in_failures WHERE key = ?", [key])

    def sign_in_external(
        self, name: str, role: str, *, identity: str, actor: str = ""
    ) -> Principal:
        """A person signed in through the organisation's identity provider: their account
        is made on first sign-in and its role follows the provider's on every sign-in.
        ``identity`` names them at the provider (issuer and subject); the account has no
        password, so it can never sign in with one.

        Raises ForbiddenError when the name belongs to a local account or to another
        identity, or the account is disabled."""
        _check_name(name)
        _check_role(role)
        marker = EXTERNAL_PREFIX + hash_token(identity)
        with self.write():
            rows = list(self.db["users"].rows_where("name = ?", [name]))
            if not rows:
                self.db["users"].insert(
                    {
                        "name": name,
                        "role": role,
                        "password_hash": marker,
                        "created_at": utc_now(),
                        "disabled": 0,
                    }
                )
                self.audit(
                    actor or f"oidc:{name}",
                    "user create",
                    name,
                    f"role {role} (organisation sign-in)",
                )
            else:
                row = rows[0]
                if row["password_hash"] != marker:
                    raise ForbiddenError(
                        f"the name {name!r} belongs to another account of this service; ask an "
                        "administrator to rename one of them"
                    )
                if row["disabled"]:
                    raise ForbiddenError(f"the account {name!r} is disabled")
                if row["role"] != role:
                    self.db["users"].update(name, {"role": role})
                    self._end_sessions(name)
                    self.audit(
                        actor or f"oidc:{name}",
                        "role change",
                        name,
                        f"{row['role']} -> {role} (organisation sign-in)",
                    )
        return Principal(name, role, "session")

    def get_user(self, name: str) -> Principal | None:
        rows = list(self.db["users"].rows_where("name = ? AND disabled = 0", [name]))
        return Principal(rows[0]["name"], rows[0]["role"], "session") if rows else None
