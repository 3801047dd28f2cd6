"""Languages, said plainly: the API and the page say what a request is written in and whether
the model reads it well; the languages served come from the model's card or a setting."""

from __future__ import annotations

import re

import pytest

from kb.language import ENGLISH_ONLY, model_languages
from tests.integration.test_pages import people, search, sign_in  # noqa: F401 (fixtures)

GERMAN = "Mein Passwort ist abgelaufen und ich kann mich seit heute Morgen nicht mehr anmelden"


def suggest(client, auth, **body):
    response = client.post("/api/v1/suggest", json=body, headers=auth())
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_the_api_says_what_language_a_request_is_in_and_whether_it_is_served(client, auth):
    german = suggest(client, auth, description=GERMAN)["language"]
    assert (german["code"], german["name"], german["served"]) == ("de", "German", False)
    assert "German" in german["note"] and "English" in german["note"]
    english = suggest(client, auth, description="my vpn keeps disconnecting every five minutes")["language"]
    assert (english["code"], english["served"], english["note"]) == ("en", True, "")
    short = suggest(client, auth, description="ORA-12541")["language"]
    assert (short["code"], short["served"]) == (None, True)


def test_the_page_shows_a_note_when_the_model_does_not_read_the_language(client, people):  # noqa: F811
    sign_in(client)
    page = search(client, description=GERMAN, follow_redirects=True).get_data(as_text=True)
    note = re.search(r'<p class="language-note"[^>]*>([^<]+)</p>', page)
    assert note and "reads as German" in note.group(1)
    page = search(client, description="my vpn keeps disconnecting every five minutes",
                  follow_redirects=True).get_data(as_text=True)
    assert 'class="language-note"' not in page


def test_a_setting_names_the_languages_a_model_reads(tmp_path, monkeypatch, indexed):
    from kb.app.service import Service
    from kb.config import load_config

    service = Service(load_config(environ={"KB_MODEL_LANGUAGES": "de,en"}, home=str(indexed.config.home_path),
                                  embed_backend="hashing"), embedder=indexed.embedder())
    assert service.model_languages() == frozenset({"de", "en"})
    from search.suggester import SuggestRequest

    found = service.suggester().suggest(service.store(), SuggestRequest(description=GERMAN), record=False)
    assert found.language["served"] is True and found.language["note"] == ""
    service.close()


@pytest.mark.parametrize("card, expected", [
    ("---\nlanguage: en\nlicense: apache-2.0\n---\n# A model\n", ENGLISH_ONLY),
    ("---\nlanguage:\n- multilingual\n- de\n- ja\n---\n", frozenset({"de", "ja"})),
    ("---\nlanguage:\n- multilingual\n---\n", None),
    ("no front matter", ENGLISH_ONLY),
])
def test_the_model_card_says_which_languages_a_model_reads(tmp_path, card, expected):
    (tmp_path / "README.md").write_text(card, encoding="utf-8")
    assert model_languages(tmp_path) == expected
    assert model_languages(tmp_path, "all") is None
    assert model_languages(tmp_path, "fr, it") == frozenset({"fr", "it"})
