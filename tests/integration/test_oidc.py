"""Sign-in through the organisation (OpenID Connect) against a provider on loopback."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from kb.errors import ConfigError
from tests.oidc_provider import Provider


@pytest.fixture
def provider():
    with Provider() as running:
        yield running


@pytest.fixture
def oidc_app(indexed, config, provider):
    from web import create_app

    indexed.store().create_user("kim", "knowledge_manager", "manager-password")
    cfg = config.with_overrides(
        oidc_issuer=provider.issuer,
        oidc_client_id=provider.client_id,
        oidc_client_secret=provider.client_secret,
        oidc_roles="kb-curators=knowledge_manager,support=agent,kb-admins=admin",
    )
    return create_app({"TESTING": True}, config=cfg, service=indexed)


def start(client, next_url="/"):
    """The browser's trip to the provider and back: (callback path with its query)."""
    response = client.get("/login/organisation", query_string={"next": next_url})
    assert response.status_code == 302
    at_provider = requests.get(response.headers["Location"], allow_redirects=False, timeout=10)
    assert at_provider.status_code == 302
    back = urlsplit(at_provider.headers["Location"])
    assert back.path == "/login/organisation/callback"
    return f"{back.path}?{back.query}"


def who(client):
    page = client.get("/").get_data(as_text=True)
    match = re.search(r'<span class="who">([^<]+)</span>', page)
    return match.group(1) if match else None


def test_sign_in_through_the_organisation_with_a_role_from_a_claim(oidc_app, provider, indexed):
    client = oidc_app.test_client()
    login = client.get("/login").get_data(as_text=True)
    assert 'id="oidc-sign-in"' in login
    provider.person = {
        "sub": "u-7",
        "preferred_username": "olga",
        "roles": ["support", "kb-curators"],
    }
    callback = start(client, "/dashboard")
    query = parse_qs(urlsplit(callback).query)
    assert query["state"][0] and query["code"][0]
    response = client.get(callback)
    assert response.status_code == 302 and response.headers["Location"] == "/dashboard"
    assert who(client) == "olga (knowledge manager)"  # the highest role matched
    assert client.get("/dashboard").status_code == 200
    assert provider.token_requests == 1
    # The role follows the provider on the next sign-in, and the old sessions end.
    provider.person = dict(provider.person, roles=["support"])
    other = oidc_app.test_client()
    assert other.get(start(other)).status_code == 302
    assert who(other) == "olga (agent)"
    assert who(client) is None  # the session with the old role has ended
    entries = [e for e in indexed.store().audit_entries() if e["target"] == "olga"]
    assert {e["action"] for e in entries} == {"user create", "role change"}
    # The account has no password: it cannot sign in as a local account.
    assert indexed.store().authenticate_user("olga", "") is None


def test_local_accounts_still_sign_in(oidc_app):
    client = oidc_app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    response = client.post(
        "/login", data={"name": "kim", "password": "manager-password", "csrf_token": token}
    )
    assert response.status_code == 302 and who(client) == "kim (knowledge manager)"


def test_a_wrong_or_replayed_state_is_refused(oidc_app, provider):
    provider.person = {"sub": "u-3", "preferred_username": "olga", "roles": "support"}
    client = oidc_app.test_client()
    callback = start(client)
    forged = re.sub(r"state=[^&]+", "state=forged", callback)
    refused = client.get(forged)
    assert refused.status_code == 401 and "not accepted" in refused.get_data(as_text=True)
    assert who(client) is None
    # A code and state from a sign-in begun in another browser (login CSRF) are refused.
    attacker = oidc_app.test_client()
    planted = start(attacker)
    victim = oidc_app.test_client()
    victim.get("/login")
    assert victim.get(planted).status_code == 401 and who(victim) is None
    # The genuine answer, once; its replay is refused.
    assert client.get(callback).status_code == 302 and who(client) == "olga (agent)"
    again = oidc_app.test_client()
    assert again.get(callback).status_code == 401 and who(again) is None


@pytest.mark.parametrize("tamper", ["nonce", "key", "audience", "issuer", "expired"])
def test_an_id_token_that_does_not_verify_is_refused(oidc_app, provider, tamper):
    provider.tamper = tamper
    client = oidc_app.test_client()
    refused = client.get(start(client))
    assert refused.status_code == 401, tamper
    assert "identity token was not accepted" in refused.get_data(as_text=True)
    assert who(client) is None and provider.token_requests == 1


def test_no_matching_role_or_a_local_name_is_refused(oidc_app, provider, indexed):
    provider.person = {"sub": "u-9", "preferred_username": "olga", "roles": ["finance"]}
    client = oidc_app.test_client()
    refused = client.get(start(client))
    assert refused.status_code == 403 and "no role in this service" in refused.get_data(
        as_text=True
    )
    assert not indexed.store().has_user("olga")
    # An organisation identity can never take over a local account of the same name.
    provider.person = {"sub": "u-10", "preferred_username": "kim", "roles": ["kb-admins"]}
    refused = client.get(start(client))
    assert refused.status_code == 403 and "belongs to another account" in refused.get_data(
        as_text=True
    )
    assert indexed.store().get_user("kim").role == "knowledge_manager"
    # Nor another identity that uses the same name.
    provider.person = {"sub": "u-11", "preferred_username": "olga", "roles": ["support"]}
    assert client.get(start(client)).status_code == 302
    provider.person = {"sub": "u-12", "preferred_username": "olga", "roles": ["kb-admins"]}
    other = oidc_app.test_client()
    assert other.get(start(other)).status_code == 403 and who(other) is None
    # `kb users disable` keeps a person out even when the provider lets them in.
    indexed.store().disable_user("olga")
    provider.person = {"sub": "u-11", "preferred_username": "olga", "roles": ["support"]}
    refused = other.get(start(other))
    assert (
        refused.status_code == 403
        and "disabled" in refused.get_data(as_text=True)
        and who(other) is None
    )


def test_half_set_up_sign_in_is_refused_at_start(config):
    with pytest.raises(ConfigError, match="KB_OIDC_CLIENT_ID"):
        config.with_overrides(oidc_issuer="https://id.example.com").check_oidc()
    with pytest.raises(ConfigError, match="KB_OIDC_ROLES"):
        config.with_overrides(
            oidc_issuer="https://id.example.com",
            oidc_client_id="a",
            oidc_client_secret="b",
            oidc_roles="staff=superuser",
        ).check_oidc()
    with pytest.raises(ConfigError, match="https"):
        config.with_overrides(
            oidc_issuer="http://id.example.com", oidc_client_id="a", oidc_client_secret="b"
        ).check_oidc()


def test_kb_serve_refuses_a_half_set_up_provider(tmp_path):
    from click.testing import CliRunner

    from scripts.cli import cli

    env = {
        "KB_HOME": str(tmp_path / "home"),
        "KB_EMBED_BACKEND": "hashing",
        "KB_OIDC_ISSUER": "https://id.example.com",
        "KB_PORT": "0",
    }  # checked before the port
    assert CliRunner().invoke(cli, ["init"], env=env).exit_code == 0
    result = CliRunner().invoke(cli, ["serve"], env=env)
    assert result.exit_code != 0 and "KB_OIDC_CLIENT_ID" in result.output


def test_the_registered_redirect_address_is_used_when_set(indexed, config, provider):
    from web import create_app

    cfg = config.with_overrides(
        oidc_issuer=provider.issuer,
        oidc_client_id=provider.client_id,
        oidc_client_secret=provider.client_secret,
        oidc_redirect_uri="https://kb.example.com/login/organisation/callback",
    )
    client = create_app({"TESTING": True}, config=cfg, service=indexed).test_client()
    location = client.get("/login/organisation").headers["Location"]
    query = parse_qs(urlsplit(location).query)
    assert query["redirect_uri"] == ["https://kb.example.com/login/organisation/callback"]
    assert query["nonce"][0] and query["state"][0] and "openid" in query["scope"][0].split()


def test_roles_from_claims(config):
    from web.oidc import name_from_claims, role_from_claims

    mapped = config.with_overrides(
        oidc_roles="kb-admins=admin, support = agent", oidc_role_claim="groups"
    )
    assert role_from_claims({"groups": ["support", "kb-admins"]}, mapped) == "admin"
    assert role_from_claims({"groups": "support"}, mapped) == "agent"
    assert role_from_claims({"groups": ["finance"]}, mapped) is None
    assert role_from_claims({"groups": [{"nested": 1}, 7]}, mapped) is None
    assert role_from_claims({}, mapped.with_overrides(oidc_default_role="agent")) == "agent"
    # Without a map, the values are the role names; integration is never given by sign-in.
    assert role_from_claims({"roles": ["knowledge_manager"]}, config) == "knowledge_manager"
    assert role_from_claims({"roles": ["integration"]}, config) is None
    assert name_from_claims({"preferred_username": " olga ", "sub": "1"}, config) == "olga"
    assert name_from_claims({"email": "o@example.com", "sub": "1"}, config) == "o@example.com"
    assert name_from_claims({"sub": "1"}, config) == "1"
