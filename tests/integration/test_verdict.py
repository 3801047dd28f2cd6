"""One verdict per request: when the service says "no good match", the results, the routing,
the first-line hint, the API fields and the page all say the same (hashing embedder, a desk
whose confidence is fitted at kb index)."""

import random
import re
import shutil

import pytest

from indexer.embedders import HashingEmbedder
from kb.app.service import Service
from kb.config import load_config
from kb.models import Incident
from search.confidence import NO_MATCH_CAP
from search.profile import RankingProfile
from web import create_app

TOPICS = {
    "Network team": [
        "vpn tunnel drops",
        "wifi signal lost",
        "proxy refuses connection",
        "dns lookup fails",
    ],
    "Mail team": [
        "mailbox quota full",
        "outlook cannot send",
        "calendar invite missing",
        "spam filter eats mail",
    ],
    "Printing team": [
        "printer paper jam",
        "toner empty warning",
        "print queue stuck",
        "printer offline",
    ],
}
FILLER = "user reports issue since this morning on floor site office laptop desk".split()
OFF_TOPIC = "best recipe for banana bread with walnuts"
ON_TOPIC = "printer paper jam on floor"


def desk(n_per_topic: int = 40, seed: int = 3) -> list[Incident]:
    rng = random.Random(seed)
    out = []
    for group, phrases in TOPICS.items():
        for n in range(n_per_topic):
            phrase = rng.choice(phrases)
            words = phrase.split() + rng.sample(FILLER, 4)
            rng.shuffle(words)
            out.append(
                Incident(
                    id=f"{group[:3]}-{n}",
                    title="",
                    description=" ".join(words),
                    resolution=f"{group}: fixed {phrase}",
                    category=group,
                    status="resolved",
                    assignment_group=group,
                    escalated="no" if n % 5 else "yes",
                )
            )
    return out


@pytest.fixture(scope="module")
def desk_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("verdict") / "home"
    service = Service(
        load_config(environ={}, home=str(home), embed_backend="hashing"), embedder=HashingEmbedder()
    )
    service.store().upsert_incidents(desk())
    service.index()
    service.store().create_user("ana", "agent", "agent-password")
    token = service.store().create_token("verdict", "agent")
    service.close()
    return home, token


@pytest.fixture
def desk_client(desk_home, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(desk_home[0], home)
    config = load_config(environ={}, home=str(home), embed_backend="hashing")
    service = Service(config, embedder=HashingEmbedder())
    app = create_app({"TESTING": True}, config=config, service=service)
    yield app.test_client(), {"Authorization": f"Bearer {desk_home[1]}"}, service
    service.close()


def ask(client, headers, text):
    response = client.post("/api/v1/suggest", json={"description": text, "k": 5}, headers=headers)
    assert response.status_code == 200
    return response.get_json()


def test_the_desk_has_a_fitted_confidence(desk_client):
    _, _, service = desk_client
    profile = RankingProfile.from_dict(
        service.store().latest_ranking_profile(service.embedder().model_id)
    )
    assert profile.trust is not None
    stream = profile.fitted["trust"]["stream"]
    assert stream["answerable"] >= 30 and stream["near"] > 0 and stream["far"] > 100


def test_banner_and_results_agree(desk_client):
    client, headers, _ = desk_client
    flagged = ask(client, headers, OFF_TOPIC)
    assert flagged["no_good_match"] is True and flagged["results"]
    for result in flagged["results"]:
        assert result["confidence_band"] == "low"
        assert result["score"] <= NO_MATCH_CAP
    answered = ask(client, headers, ON_TOPIC)
    assert answered["no_good_match"] is False
    assert answered["results"][0]["confidence_band"] in ("high", "medium")
    assert answered["results"][0]["confidence"] == answered["results"][0]["score"]


def test_banner_and_routing_agree(desk_client):
    client, headers, _ = desk_client
    flagged = ask(client, headers, OFF_TOPIC)["triage"]
    for name in ("category", "product", "assignment_group"):
        assert flagged[name]["value"] is None and flagged[name]["not_sure"] is True
    answered = ask(client, headers, ON_TOPIC)["triage"]
    assert answered["assignment_group"]["value"] == "Printing team"


def test_banner_and_first_line_hint_agree(desk_client):
    client, headers, _ = desk_client
    flagged = ask(client, headers, OFF_TOPIC)["triage"]["first_line"]
    assert flagged["applies"] is False and flagged["text"] == ""
    answered = ask(client, headers, ON_TOPIC)["triage"]["first_line"]
    assert answered["applies"] is True and "first line" in answered["text"]


def test_confidences_are_not_shares_of_the_top_results(desk_client):
    client, headers, _ = desk_client
    pairs = []
    for text in (
        ON_TOPIC,
        "vpn tunnel drops at the site",
        "mailbox quota full on laptop",
        "toner empty warning",
        "outlook cannot send this morning",
        "dns lookup fails",
    ):
        values = [r["confidence"] for r in ask(client, headers, text)["results"]]
        assert values == sorted(values, reverse=True)
        pairs.append(values[0] + values[1])
    # Each is its own estimate, not a split of certainty between the first two.
    assert any(abs(pair - 1.0) > 0.01 for pair in pairs)


def sign_in(client):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    client.post("/login", data={"name": "ana", "password": "agent-password", "csrf_token": token})


def page_for(client, text):
    page = client.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    return client.post(
        "/", data={"csrf_token": token, "description": text}, follow_redirects=True
    ).get_data(as_text=True)


def test_page_and_api_agree(desk_client):
    client, _, _ = desk_client
    sign_in(client)
    flagged = page_for(client, OFF_TOPIC)
    assert "No good match" in flagged
    assert "High confidence" not in flagged and "Medium confidence" not in flagged
    assert 'class="first-line"' not in flagged
    assert "not sure" in flagged
    answered = page_for(client, ON_TOPIC)
    assert "No good match" not in answered and 'class="first-line"' in answered
    assert re.search(r"(High|Medium) confidence · \d+%", answered)


def test_an_index_whose_profile_is_rejected_publishes_nothing(desk_home, tmp_path):
    from indexer.index_files import read_config
    from kb.app.service import ProfileRejected

    home = tmp_path / "home"
    shutil.copytree(desk_home[0], home)
    service = Service(
        load_config(environ={}, home=str(home), embed_backend="hashing"), embedder=HashingEmbedder()
    )
    before = read_config(service.index_root)["version"]
    seen = []
    with pytest.raises(ProfileRejected, match="not better"):
        service.index(
            rebuild=True, accept=lambda profile: seen.append(profile.source) or "not better"
        )
    assert seen == ["fitted"] and read_config(service.index_root)["version"] == before
    service.index(rebuild=True, accept=lambda profile: "")
    assert read_config(service.index_root)["version"] != before
    service.close()
