"""Intake's OpenAPI document names the answers its routes give besides success (found by
Schemathesis, tests/system/integration/test_schemathesis.py): Open311's errors in the spec's
format (a JSON list, or XML) on every Open311 route, its answers in XML too and its photos
as images; the residents' routes' 404 for a matter out of reach and 409 for a step the
matter cannot take."""

from __future__ import annotations

from typing import Any

import pytest

from minqing.services.intake.app import create_app
from minqing.services.intake.channels.open311.domain import PHOTO_TYPES
from minqing.shared.service.settings import Settings


@pytest.fixture(scope="module")
def paths() -> dict[str, Any]:
    return dict(create_app(Settings()).openapi()["paths"])  # building it connects to nothing


def test_every_open311_route_documents_the_specs_errors_and_xml(paths: dict[str, Any]) -> None:
    routes = {p: ops for p, ops in paths.items() if p.startswith("/open311/v2/")}
    assert len(routes) == 7
    for path, operations in routes.items():
        for method, operation in operations.items():
            answers = operation["responses"]
            for code in ("400", "403", "404", "409", "413"):
                content = answers[code]["content"]
                assert set(content) == {"application/json", "text/xml"}, (method, path, code)
                assert content["application/json"]["schema"]["type"] == "array"
            if path != "/open311/v2/media/{media_id}":
                assert {"application/json", "text/xml"} <= set(answers["200"]["content"])
    media = paths["/open311/v2/media/{media_id}"]["get"]["responses"]["200"]["content"]
    assert set(PHOTO_TYPES) <= set(media)


@pytest.mark.parametrize(
    ("method", "path", "codes"),
    [
        ("get", "/api/v1/issues/{issue_id}/supervisors", {"404"}),
        ("get", "/api/v1/issues/{issue_id}/supervision", {"404"}),
        ("get", "/api/v1/issues/{issue_id}/replies", {"404"}),
        ("post", "/api/v1/issues/{issue_id}/supervisors", {"404", "409"}),
        ("post", "/api/v1/issues/{issue_id}/supervision", {"404", "409"}),
        ("post", "/api/v1/feedback/{token}", {"404", "409"}),
    ],
)
def test_the_residents_routes_document_their_refusals(
    paths: dict[str, Any], method: str, path: str, codes: set[str]
) -> None:
    assert codes <= set(paths[path][method]["responses"])
