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
    english = suggest(client, auth, description="my vpn keeps disconnecting every five minutes")[
        "language"
    ]
    assert (english["code"], english["served"], english["note"]) == ("en", True, "")
    short = suggest(client, auth, description="ORA-12541")["language"]
    assert (short["code"], short["served"]) == (None, True)


def test_the_page_shows_a_note_when_the_model_does_not_read_the_language(client, people):  # noqa: F811
    sign_in(client)
    page = search(client, description=GERMAN, follow_redirects=True).get_data(as_text=True)
    note = re.search(r'<p class="language-note"[^>]*>([^<]+)</p>', page)
    assert note and "reads as German" in note.group(1)
    page = search(
        client, description="my vpn keeps disconnecting every five minutes", follow_redirects=True
    ).get_data(as_text=True)
    assert 'class="language-note"' not in page


def test_a_setting_names_the_languages_a_model_reads(tmp_path, monkeypatch, indexed):
    from kb.app.service import Service
    from kb.config import load_config

    service = Service(
        load_config(
            environ={"KB_MODEL_LANGUAGES": "de,en"},
            home=str(indexed.config.home_path),
            embed_backend="hashing",
        ),
        embedder=indexed.embedder(),
    )
    assert service.model_languages() == frozenset({"de", "en"})
    from search.suggester import SuggestRequest

    found = service.suggester().suggest(
        service.store(), SuggestRequest(description=GERMAN), record=False
    )
    assert found.language["served"] is True and found.language["note"] == ""
    service.close()


@pytest.mark.parametrize(
    "card, expected",
    [
        ("---\nlanguage: en\nlicense: apache-2.0\n---\n# A model\n", ENGLISH_ONLY),
        ("---\nlanguage:\n- multilingual\n- de\n- ja\n---\n", frozenset({"de", "ja"})),
        ("---\nlanguage:\n- multilingual\n---\n", None),
        ("no front matter", ENGLISH_ONLY),
    ],
)
def test_the_model_card_says_which_languages_a_model_reads(tmp_path, card, expected):
    (tmp_path / "README.md").write_text(card, encoding="utf-8")
    assert model_languages(tmp_path) == expected
    assert model_languages(tmp_path, "all") is None
    assert model_languages(tmp_path, "fr, it") == frozenset({"fr", "it"})


# --- the lexical half reads each language with its own analysis --------------------------

GERMAN_INCIDENTS = [
    {
        "id": "DE-1",
        "title": "Anmeldung schlägt fehl",
        "description": "Die Passwörter der Benutzer sind abgelaufen",
        "resolution": "Kennwort im Portal zurückgesetzt.",
        "status": "resolved",
    },
    {
        "id": "DE-2",
        "title": "Drucker druckt nicht",
        "description": "Der Drucker im zweiten Stock zeigt einen Papierstau",
        "resolution": "Papierstau entfernt.",
        "status": "resolved",
    },
    {
        "id": "JA-1",
        "title": "プリンターが印刷できない",
        "description": "三階のプリンターで印刷ができない状態です",
        "resolution": "プリンタードライバーを再インストールしました。",
        "status": "resolved",
    },
    {
        "id": "JA-2",
        "title": "メールが送信できない",
        "description": "メールボックスが一杯で送信できません",
        "resolution": "古いメールを削除しました。",
        "status": "resolved",
    },
]


def lexical_hits(service, text, language):
    """The documents the lexical half (BM25 over the store's full-text index) finds."""
    from search.ranking import lexical_candidates
    from search.text import search_terms

    store = service.store()
    state = service.suggester().ensure_state(store)
    hits = lexical_candidates(state, store, search_terms(text, language))
    return {state.chunk_doc.get(cid)[1] for cid in hits}


@pytest.mark.both_engines
def test_german_is_stemmed_and_japanese_split_on_both_sides(client, auth, indexed):
    response = client.post("/api/v1/incidents", json=GERMAN_INCIDENTS, headers=auth("integration"))
    assert response.status_code == 201
    # No word of the request stands in DE-1 as written: only their German stems meet.
    assert lexical_hits(indexed, "Anmeldungen abgelaufenen", "de") == {"DE-1"}
    # Japanese is written without spaces: only character bigrams meet.
    assert lexical_hits(indexed, "印刷の問題、プリンター", "ja") == {"JA-1"}
    body = client.post(
        "/api/v1/suggest",
        json={"description": "印刷ができません、プリンターの問題です"},
        headers=auth(),
    ).get_json()
    assert "JA-1" in [r["id"] for r in body["results"]]
    assert body["language"]["code"] == "ja"


# --- a multilingual model folder, used end to end -----------------------------------------


def make_model_folder(root, card: str):
    """A tiny sentence-transformers model folder (a randomly initialised one-layer BERT with
    the packaged model's tokenizer), as any local model folder looks; nothing downloaded."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from indexer.embedders import packaged_model_path

    tokenizer = BertTokenizerFast.from_pretrained(str(packaged_model_path()))
    torch.manual_seed(0)
    bert = BertModel(
        BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=256,
        )
    )
    transformer_dir = root / "bert"
    bert.save_pretrained(str(transformer_dir))
    tokenizer.save_pretrained(str(transformer_dir))
    word = models.Transformer(str(transformer_dir), max_seq_length=128)
    pooling = models.Pooling(word.get_word_embedding_dimension(), "mean")
    folder = root / "multilingual-model"
    SentenceTransformer(modules=[word, pooling], device="cpu").save(str(folder))
    (folder / "README.md").write_text(card, encoding="utf-8")
    return folder


def test_a_configured_multilingual_model_folder_is_used_end_to_end(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from indexer.encoding import model_fingerprint
    from indexer.index_files import read_config
    from kb.app.service import Service
    from kb.config import load_config
    from scripts.cli import cli
    from search.suggester import SuggestRequest
    from tests.conftest import DATA

    folder = make_model_folder(
        tmp_path, "---\nlanguage:\n- multilingual\nlicense: mit\n---\n# A model\n"
    )
    home = tmp_path / "home"
    monkeypatch.setenv("KB_HOME", str(home))
    monkeypatch.setenv("KB_MODEL", str(folder))
    monkeypatch.setenv("KB_EMBED_BACKEND", "torch")
    runner = CliRunner()
    for args in (
        ["init"],
        ["import", "articles", str(DATA / "articles")],
        ["import", "incidents", str(DATA / "incidents.jsonl")],
        ["index"],
    ):
        result = runner.invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    service = Service(load_config())
    try:
        config = read_config(service.index_root)
        assert config["model_id"] == service.embedder().model_id
        assert model_fingerprint(folder) in config["model_id"]
        assert service.embedder().dimension == 32  # the folder's model, not the packaged one (384)
        assert service.model_languages() is None  # its card says multilingual
        found = service.suggester().suggest(
            service.store(), SuggestRequest(description=GERMAN), record=False
        )
        assert found.results and found.language == {
            "code": "de",
            "name": "German",
            "served": True,
            "note": "",
        }
    finally:
        service.close()
