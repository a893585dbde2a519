"""The two formats: JSON, and XML with the spec's element names (the Spark convention: a
JSON list is a wrapper element repeating one child element)."""

from __future__ import annotations

import json
from typing import Any
from xml.etree import ElementTree

from fastapi.responses import Response

from minqing.services.intake.channels.open311.domain import (
    FORMATS,
    Format,
    Open311Error,
    bad_request,
)

# Wrapper element -> its repeated child, wherever a list appears.
CHILDREN = {
    "services": "service",
    "service_requests": "request",
    "attributes": "attribute",
    "values": "value",
    "errors": "error",
    "endpoints": "endpoint",
    "formats": "format",
}


def format_of(value: str) -> Format:
    """The format named by a URL's extension; any other is a 400."""
    if value == "json":
        return "json"
    if value == "xml":
        return "xml"
    raise bad_request(f"unknown format {value[:20]!r}: use .json or .xml")


def format_of_path(path: str) -> Format:
    """The format a path asks for, for errors raised before routing: XML unless .json."""
    return "json" if path.rstrip("/").endswith(".json") else "xml"


def render(fmt: Format, root: str, content: Any, status: int = 200) -> Response:
    """``content`` (a list for list roots such as ``services``, else a dict) in ``fmt``."""
    media_type = f"{FORMATS[fmt]}; charset=utf-8"
    if fmt == "json":
        body = json.dumps(content, ensure_ascii=False)
        return Response(body.encode(), status_code=status, media_type=media_type)
    element = ElementTree.Element(root)
    _fill(element, root, content)
    xml = ElementTree.tostring(element, encoding="unicode")
    body = f'<?xml version="1.0" encoding="utf-8"?>\n{xml}'
    return Response(body.encode(), status_code=status, media_type=media_type)


def error(fmt: Format, exc: Open311Error) -> Response:
    return render(fmt, "errors", exc.body(), exc.status)


def _fill(element: ElementTree.Element, name: str, value: Any) -> None:
    if isinstance(value, list):
        child_name = CHILDREN.get(name, "item")
        for item in value:
            _fill(ElementTree.SubElement(element, child_name), child_name, item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _fill(ElementTree.SubElement(element, key), key, item)
    elif value is None:
        return
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    else:
        element.text = str(value)
