"""The OpenAPI description at /api/v1/openapi.json matches the implementation.

Schemathesis generates requests for every operation from the served document, calls the
Flask app in-process (WSGI) and checks each answer: never a 5xx, status codes, content
types and bodies as documented, schema-valid requests accepted and schema-violating ones
rejected. Positive and negative cases run for every operation; feedback is fuzzed both on
unknown suggestions and on real ones.

KB_FUZZ_EXAMPLES sets the cases per operation and mode (default 40).
"""

from __future__ import annotations

import copy
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from indexer.embedders import HashingEmbedder
from kb.app.service import Service
from kb.config import load_config
from tests.conftest import load_test_data
from web import create_app
from web.openapi import openapi_document

EXAMPLES = int(os.environ.get("KB_FUZZ_EXAMPLES", "40"))
# Hypothesis cannot draw strings longer than this, and schemathesis would ask for one to
# break a larger maxLength; those limits are checked by test_long_text_limits instead.
LONGEST_GENERATED = 65_536
# A body too large for the server (413) is a correct rejection of schema-violating data.
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422"]
OPERATIONS = [
    (path, method.upper()) for path, item in openapi_document()["paths"].items() for method in item
]
CASES: dict[str, int] = {}


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    home = tmp_path_factory.mktemp("fuzz") / "home"
    config = load_config(environ={}, home=str(home), embed_backend="hashing")
    service = Service(config, embedder=HashingEmbedder())
    load_test_data(service)
    service.index()
    token = service.store().create_token("fuzz", "admin")
    app = create_app({"TESTING": True}, config=config, service=service)
    yield app, {"Authorization": f"Bearer {token}"}
    service.close()


def fuzzable(document: dict) -> dict:
    document = copy.deepcopy(document)

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("maxLength"), int) and node["maxLength"] > LONGEST_GENERATED:
                del node["maxLength"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    return document


@pytest.fixture(scope="module")
def api_schema(fuzz_app):
    app, _ = fuzz_app
    served = app.test_client().get("/api/v1/openapi.json").get_json()
    config = SchemathesisConfig.from_dict(
        {
            "checks": {"negative_data_rejection": {"expected-statuses": REJECTED}},
            # Unknown query parameters are ignored, as is usual on the web: not a violation.
            "generation": {"allow-extra-parameters": False},
        }
    )
    schema = schemathesis.openapi.from_dict(fuzzable(served), config=config)
    schema.app = app  # calls go to the Flask app in-process
    return schema


def duplicate_ids(body) -> bool:
    """JSON Schema cannot say 'ids are unique in the list'; the API rejects such a list."""
    items = body if isinstance(body, list) else [body]
    ids = [str(item["id"]).strip() for item in items if isinstance(item, dict) and "id" in item]
    return len(ids) != len(set(ids))


def fuzz(
    operation,
    mode: GenerationMode,
    headers: dict,
    *,
    label: str,
    path_parameters: dict | None = None,
    strict_acceptance: bool = True,
) -> int:
    cases = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def run(case):
        nonlocal cases
        cases += 1
        excluded = []
        if not strict_acceptance or duplicate_ids(case.body):
            excluded.append(positive_data_acceptance)
        case.call_and_validate(headers=headers, excluded_checks=excluded)

    run()
    CASES[label] = cases
    print(f"\nschemathesis {label}: {cases} cases")
    return cases


def has_input(operation) -> bool:
    definition = operation.definition.raw
    return bool(definition.get("parameters") or definition.get("requestBody"))


@pytest.mark.parametrize("path, method", OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_operation_matches_its_description(api_schema, fuzz_app, path, method):
    _, headers = fuzz_app
    operation = api_schema[path][method]
    total = fuzz(operation, GenerationMode.POSITIVE, headers, label=f"{method} {path} positive")
    if has_input(operation):
        total += fuzz(
            operation, GenerationMode.NEGATIVE, headers, label=f"{method} {path} negative"
        )
    assert total > 0


def test_feedback_on_real_suggestions(api_schema, fuzz_app):
    app, headers = fuzz_app
    client = app.test_client()
    suggestion_ids = [
        client.post(
            "/api/v1/suggest", json={"description": text, "k": 3}, headers=headers
        ).get_json()["suggestion_id"]
        for text in ("vpn keeps dropping", "mailbox is full", "charged twice, refund")
    ]
    operation = api_schema["/api/v1/suggestions/{suggestion_id}/feedback"]["POST"]
    for n, suggestion_id in enumerate(suggestion_ids):
        # A 'used' id that was not among the results is rightly refused, so valid-looking
        # bodies may get a 400 here; everything else is checked.
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(
                operation,
                mode,
                headers,
                label=f"feedback on suggestion {n} {mode.value}",
                path_parameters={"suggestion_id": suggestion_id},
                strict_acceptance=False,
            )


@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/v1/suggest", {"title": "x" * 100_001}),
        ("/api/v1/suggest", {"description": "vpn", "incident_id": "i" * 201}),
        ("/api/v1/incidents", {"id": "A-1", "title": "t", "description": "d" * 200_001}),
        ("/api/v1/incidents", {"id": "A" * 201, "title": "t"}),
    ],
)
def test_long_text_limits(fuzz_app, path, body):
    app, headers = fuzz_app
    response = app.test_client().post(path, json=body, headers=headers)
    assert response.status_code == 400
    assert set(response.get_json()["error"]) == {"code", "message"}


def test_the_document_is_valid_openapi(api_schema):
    # Loading validated the document; every operation must be reachable for fuzzing.
    labels = {
        (result.ok().path, result.ok().method.upper()) for result in api_schema.get_all_operations()
    }
    assert labels == set(OPERATIONS)
