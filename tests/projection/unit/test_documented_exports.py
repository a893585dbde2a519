"""The projection's OpenAPI document says what its Excel export answers: a workbook, not
JSON (found by Schemathesis, tests/system/integration/test_schemathesis.py)."""

from __future__ import annotations

from minqing.services.projection.api import XLSX
from minqing.services.projection.app import create_app
from minqing.shared.service.settings import Settings


def test_the_excel_export_is_documented_as_a_workbook() -> None:
    paths = create_app(Settings()).openapi()["paths"]  # building it connects to nothing
    content = paths["/api/v1/issues/export.xlsx"]["get"]["responses"]["200"]["content"]
    assert XLSX == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert set(content) == {XLSX}
