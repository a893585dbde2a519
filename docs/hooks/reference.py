"""MkDocs hook: the HTTP and event references, generated from the code at build time.

- HTTP: each service's app is built (``create_app(Settings())``: building it connects to
  nothing) and its OpenAPI document rendered as ``reference/http/<service>.md``.
- Events: the AsyncAPI document (the same one ``minqing asyncapi`` prints) rendered as
  ``reference/events.md``, one page per event type under ``reference/events/``, and the
  channels beside the canonical stream (ingress, outcomes, dead letters).
- Roles: the role × endpoint matrix (``shared/identity/matrix.toml``, the data the services
  enforce) rendered as a table where ``operator/roles.md`` holds the marker ``ROLE_MATRIX``.

Nothing is written into docs/: the pages are added to the build as generated files
(``on_files``) and to the nav under "Reference" (``on_config``), so they cannot go stale in
the repository. mkdocs.yml names this file under ``hooks:``.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

SERVICES = ("intake", "assignment", "followup", "projection")
METHODS = ("get", "post", "put", "patch", "delete")

PAGES: dict[str, str] = {}


# --- shared rendering --------------------------------------------------------------------


def cell(text: Any) -> str:
    """One table cell: a single line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def type_of(schema: dict[str, Any], link: Any) -> str:
    """A schema's type in words; ``link(name)`` renders a reference to a named schema."""
    if "$ref" in schema:
        return link(ref_name(schema["$ref"]))
    for key in ("anyOf", "oneOf"):
        if key in schema:
            kinds = [s for s in schema[key] if s.get("type") != "null"]
            text = " or ".join(type_of(s, link) for s in kinds) or "null"
            return text + (" or null" if len(kinds) < len(schema[key]) else "")
    if "allOf" in schema:
        return " and ".join(type_of(s, link) for s in schema["allOf"])
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}), link)}"
    if kind == "object" and "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        if isinstance(extra, dict) and extra:
            return f"object of {type_of(extra, link)}"
    if "format" in schema:
        return f"{kind} ({schema['format']})"
    return str(kind)


def limits(schema: dict[str, Any]) -> str:
    """Length, range and pattern constraints, in short."""
    found = []
    for sub in [schema, *schema.get("anyOf", [])]:
        for key, word in (
            ("minLength", "min length"),
            ("maxLength", "max length"),
            ("minimum", "≥"),
            ("maximum", "≤"),
            ("exclusiveMinimum", ">"),
            ("exclusiveMaximum", "<"),
            ("minItems", "min items"),
            ("maxItems", "max items"),
        ):
            if key in sub:
                found.append(f"{word} {sub[key]}")
        if "pattern" in sub:
            found.append(f"pattern `{sub['pattern']}`")
    return "; ".join(found)


def fields_table(
    schema: dict[str, Any], link: Any, notes: dict[str, str] | None = None
) -> list[str]:
    """A table of an object schema's properties (``notes``: descriptions the schema lacks)."""
    properties = schema.get("properties", {})
    if not properties:
        return [f"Type: {type_of(schema, link)}.", ""]
    required = set(schema.get("required", []))
    lines = ["| field | type | required | description |", "|---|---|---|---|"]
    for name, prop in properties.items():
        about = prop.get("description") or (notes or {}).get(name, "")
        if "default" in prop and prop["default"] is not None:
            about = f"{about} (default `{json.dumps(prop['default'], ensure_ascii=False)}`)"
        extra = limits(prop)
        if extra:
            about = f"{about} ({extra})" if about else extra
        lines.append(
            f"| `{name}` | {cell(type_of(prop, link))} | {'yes' if name in required else 'no'}"
            f" | {cell(about.strip())} |"
        )
    if schema.get("additionalProperties") is False:
        lines += ["", "Other fields are refused."]
    return [*lines, ""]


def used_schemas(root: dict[str, Any], schemas: dict[str, Any]) -> list[str]:
    """The named schemas ``root`` refers to, transitively, in the order met."""
    seen: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                name = ref_name(node["$ref"])
                if name in schemas and name not in seen:
                    seen.append(name)
                    walk(schemas[name])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(root)
    return seen


# --- HTTP: OpenAPI -----------------------------------------------------------------------


APPS: dict[str, Any] = {}


def app_of(service: str) -> Any:
    """The service's app as `minqing serve` builds it (built once; it connects to nothing)."""
    if service not in APPS:
        from minqing.shared.service.settings import Settings

        module = importlib.import_module(f"minqing.services.{service}.app")
        APPS[service] = module.create_app(Settings())
    return APPS[service]


def openapi(service: str) -> dict[str, Any]:
    document: dict[str, Any] = app_of(service).openapi()
    return document


def http_page(service: str, document: dict[str, Any]) -> str:
    schemas = document.get("components", {}).get("schemas", {})

    def link(name: str) -> str:
        return f"[{name}](#schema-{name.lower()})"

    out = [
        f"# {service}",
        "",
        f"Generated from the {service} service's OpenAPI document at build time "
        f"(`create_app(Settings()).openapi()`; a running service serves it at "
        f"`/openapi.json` and `/docs`). {document['info'].get('title', '')} "
        f"{document['info'].get('version', '')}.",
        "",
        "| method | path | summary |",
        "|---|---|---|",
    ]
    operations = []
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                operations.append((path, method, item[method]))
    for n, (path, method, op) in enumerate(operations):
        out.append(f"| {method.upper()} | [`{path}`](#op-{n}) | {cell(op.get('summary', ''))} |")
    out.append("")
    for n, (path, method, op) in enumerate(operations):
        out += [f"## {method.upper()} `{path}` {{#op-{n}}}", ""]
        if op.get("description"):
            out += [" ".join(op["description"].split()), ""]
        params = op.get("parameters", [])
        if params:
            out += ["| parameter | in | type | required | description |", "|---|---|---|---|---|"]
            for p in params:
                schema = p.get("schema", {})
                about = p.get("description") or schema.get("description") or ""
                extra = limits(schema)
                if extra:
                    about = f"{about} ({extra})" if about else extra
                out.append(
                    f"| `{p['name']}` | {p['in']} | {cell(type_of(schema, link))} | "
                    f"{'yes' if p.get('required') else 'no'} | {cell(about)} |"
                )
            out.append("")
        body = op.get("requestBody")
        if body:
            for kind, content in body.get("content", {}).items():
                out += [f"Request body (`{kind}`): {type_of(content.get('schema', {}), link)}.", ""]
        out += ["| status | description | body |", "|---|---|---|"]
        for status, response in op.get("responses", {}).items():
            bodies = [
                f"{type_of(c.get('schema', {}), link)} (`{kind}`)"
                for kind, c in response.get("content", {}).items()
            ]
            about = cell(response.get("description", ""))
            out.append(f"| {status} | {about} | {cell(', '.join(bodies))} |")
        out.append("")
    if schemas:
        out += ["## Schemas", ""]
        for name, schema in schemas.items():
            out += [f"### {name} {{#schema-{name.lower()}}}", ""]
            if schema.get("description"):
                out += [" ".join(schema["description"].split()), ""]
            out += fields_table(schema, link)
    return "\n".join(out) + "\n"


def http_pages() -> dict[str, str]:
    pages = {}
    rows = ["| service | routes |", "|---|---|"]
    for service in SERVICES:
        document = openapi(service)
        pages[f"reference/http/{service}.md"] = http_page(service, document)
        count = sum(1 for item in document["paths"].values() for m in METHODS if m in item)
        rows.append(f"| [{service}]({service}.md) | {count} |")
    pages["reference/http/index.md"] = "\n".join(
        [
            "# HTTP reference",
            "",
            "Every route of every service, generated at build time from each service's "
            "OpenAPI document (FastAPI's, from the routes and their request and response "
            "models). What each route answers in words, with its error cases, is in "
            "[the HTTP API at a glance](../http-api.md).",
            "",
            *rows,
            "",
        ]
    )
    return pages


# --- Events: AsyncAPI --------------------------------------------------------------------


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI document from the service catalogue; if its names have moved, from the
    ``minqing asyncapi`` command, which prints the same document."""
    try:
        from minqing.services import catalog
        from minqing.shared.service.settings import Settings

        settings = Settings()
        if hasattr(catalog, "document"):  # assembled from every service's declaration
            document: dict[str, Any] = catalog.document(settings)
            return document
        from minqing.shared.contract.asyncapi import asyncapi

        consumers = catalog.consumers()  # type: ignore[call-arg]
        return asyncapi(settings, consumers, catalog.channels(settings))
    except (ImportError, AttributeError, TypeError):
        command = Path(sys.executable).with_name("minqing")  # the installed command
        text = subprocess.run(
            [str(command), "asyncapi"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        loaded: dict[str, Any] = json.loads(text)
        return loaded


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.lstrip("#/").split("/"):
        node = node[unquote(part).replace("~1", "/").replace("~0", "~")]
    return node


def payload_schema(document: dict[str, Any], operation: dict[str, Any]) -> str | None:
    """The name of the payload schema of an operation's first message."""
    for message in operation.get("messages", []):
        found = resolve(document, message["$ref"])
        if "$ref" in found:
            found = resolve(document, found["$ref"])
        payload = found.get("payload", {})
        if "$ref" in payload:
            return ref_name(payload["$ref"])
    return None


def who(key: str, operation: dict[str, Any], document: dict[str, Any]) -> str:
    """The service or durable consumer an operation belongs to, from its title."""
    channel = resolve(document, operation["channel"]["$ref"])
    title = operation.get("title") or channel.get("title") or key
    if " consumes " in title:
        return title.split(" consumes ", 1)[0]
    return title.split(":", 1)[0]


FIELD_NOTES: dict[str, dict[str, str]] = {}


def field_notes() -> dict[str, dict[str, str]]:
    """The comment beside each field of the event classes (``deadline: date  # ...``), by
    class name: what a field means where its schema has no description."""
    import inspect

    from minqing.shared.contract import events

    notes: dict[str, dict[str, str]] = {}
    for _, cls in inspect.getmembers(events, inspect.isclass):
        if cls.__module__ != events.__name__:
            continue
        for line in inspect.getsource(cls).splitlines():
            found = re.match(r"^    (\w+): [^#]*#\s*(.+)$", line)
            if found:
                notes.setdefault(cls.__name__, {})[found.group(1)] = found.group(2)
    return notes


def event_pages() -> dict[str, str]:
    document = asyncapi_document()
    schemas = document.get("components", {}).get("schemas", {})
    prefix = "minqing.events."
    emitted: dict[str, list[str]] = defaultdict(list)
    consumed: dict[str, list[str]] = defaultdict(list)
    envelope: dict[str, str] = {}
    described: dict[str, str] = {}
    others: list[tuple[str, str, str, str, str | None]] = []
    for key, operation in document.get("operations", {}).items():
        channel = resolve(document, operation["channel"]["$ref"])
        address = channel["address"]
        name = who(key, operation, document)
        schema = payload_schema(document, operation)
        if address.startswith(prefix):
            kind = address[len(prefix) :]
            target = emitted if operation["action"] == "send" else consumed
            target[kind].append(name)
            if schema:
                envelope[kind] = schema
            if operation["action"] == "send":
                described[kind] = channel.get("description", "")
        else:
            others.append(
                (address, operation["action"], name, channel.get("description", ""), schema)
            )

    def data_schema(kind: str) -> str | None:
        cloud = schemas.get(envelope.get(kind, ""), {})
        ref = cloud.get("properties", {}).get("data", {}).get("$ref")
        return ref_name(ref) if ref else None

    pages: dict[str, str] = {}
    kinds = sorted(set(emitted) | set(consumed))
    rows = ["| type | emitted by | consumed by |", "|---|---|---|"]
    for kind in kinds:
        rows.append(
            f"| [`minqing.{kind}`](events/{kind}.md) | {', '.join(sorted(set(emitted[kind])))} "
            f"| {', '.join(sorted(set(consumed[kind])))} |"
        )
        pages[f"reference/events/{kind}.md"] = event_page(
            kind, described.get(kind, ""), emitted[kind], consumed[kind], data_schema(kind), schemas
        )
    info = document.get("info", {})
    pages["reference/events.md"] = "\n".join(
        [
            "# Event reference",
            "",
            f"Generated at build time from the AsyncAPI {document.get('asyncapi', '')} document "
            "(`minqing asyncapi` prints it; a running service serves it at `/asyncapi.json`), "
            "which is itself generated from the event classes and each service's routing "
            f"table. {info.get('description', '')}",
            "",
            f"Every event travels on `{prefix}<type>` as a CloudEvent; the envelope's "
            "attributes are described in [the event contract](../developer/events.md).",
            "",
            *rows,
            "",
            "The channels beside the canonical stream (department systems' ingress, their "
            "outcomes, dead letters) are in [Channels](channels.md).",
            "",
        ]
    )
    pages["reference/channels.md"] = channels_page(others, schemas)
    return pages


def event_page(
    kind: str,
    description: str,
    emitters: list[str],
    consumers: list[str],
    data: str | None,
    schemas: dict[str, Any],
) -> str:
    def link(name: str) -> str:
        return f"[{name}](#schema-{name.lower()})"

    out = [
        f"# minqing.{kind}",
        "",
        " ".join(description.split()),
        "",
        f"- Subject: `minqing.events.{kind}`",
        f"- Emitted by: {', '.join(sorted(set(emitters))) or 'nobody'}",
        f"- Consumed by: {', '.join(f'`{c}`' for c in sorted(set(consumers))) or 'nobody'}",
        "",
        "## `data`",
        "",
    ]
    if data and data in schemas:
        out += fields_table(schemas[data], link, FIELD_NOTES.get(data))
        for name in used_schemas(schemas[data], schemas):
            out += [f"### {name} {{#schema-{name.lower()}}}", ""]
            if schemas[name].get("description"):
                out += [" ".join(schemas[name]["description"].split()), ""]
            out += fields_table(schemas[name], link, FIELD_NOTES.get(name))
    else:
        out += ["The document gives no schema for its data.", ""]
    return "\n".join(out) + "\n"


def channels_page(
    others: list[tuple[str, str, str, str, str | None]], schemas: dict[str, Any]
) -> str:
    def link(name: str) -> str:
        return f"[{name}](#schema-{name.lower()})"

    out = [
        "# Channels beside the canonical stream",
        "",
        "Generated from the AsyncAPI document at build time. For department systems: see "
        "[Integrating a department system](../integrator/index.md).",
        "",
    ]
    shown: list[str] = []
    for address, action, name, description, schema in sorted(others):
        verb = "sent by" if action == "send" else "received by"
        out += [f"## `{address}` ({verb} {name})", "", " ".join(description.split()), ""]
        if schema:
            out += [f"Message: {link(schema)}.", ""]
            for found in [schema, *used_schemas(schemas.get(schema, {}), schemas)]:
                if found not in shown:
                    shown.append(found)
    if shown:
        out += ["## Schemas", ""]
        for name in shown:
            out += [f"### {name} {{#schema-{name.lower()}}}", ""]
            if schemas.get(name, {}).get("description"):
                out += [" ".join(schemas[name]["description"].split()), ""]
            out += fields_table(schemas.get(name, {}), link)
    return "\n".join(out) + "\n"


# --- Roles: the role × endpoint matrix ----------------------------------------------------

ROLE_MATRIX = "<!-- ROLE_MATRIX -->"
ROLES_PAGE = "operator/roles.md"


def served_endpoints(app: Any) -> set[str]:
    """Every "METHOD /path" an app routes (``{name:path}`` as ``{name}``), its documented
    routes and the others (the desk's page, FastAPI's /docs); a mount of files as
    ``GET /mount/{file}``."""
    from starlette.routing import Mount

    found: set[str] = set()
    routes = list(app.routes)
    while routes:
        route = routes.pop()
        included = getattr(route, "effective_candidates", None)  # an included router
        if included is not None:
            routes.extend(included())
        elif isinstance(route, Mount):
            found.add(f"GET {route.path}/{{file}}")
        else:
            path = re.sub(r":\w+\}", "}", route.path)
            found.update(
                f"{m} {path}" for m in getattr(route, "methods", None) or () if m != "HEAD"
            )
    return found


def roles_markdown() -> str:
    """The matrix as a table: each endpoint, the services that serve it, and what each role
    reaches there (``policy.roles_table``)."""
    from minqing.shared.identity.policy import matrix, openapi_path, roles_table
    from minqing.shared.identity.principal import Role

    served = {service: served_endpoints(app_of(service)) for service in SERVICES}
    entries = list(matrix().values())
    heads = " | ".join(f"`{role}`" for role in Role)
    lines = [f"| endpoint | served by | {heads} |", "|---|---|" + "---|" * len(Role)]
    for entry, row in zip(entries, roles_table(entries), strict=True):
        method, _, path = entry.endpoint.partition(" ")
        shown = f"{method} {openapi_path(path)}"
        by = [s for s in SERVICES if shown in served[s]]
        if not by:
            raise ValueError(f"matrix.toml names {entry.endpoint}, which no service serves")
        where = (
            "every service"
            if len(by) == len(SERVICES)
            else ", ".join(f"[{s}](../reference/http/{s}.md)" for s in by)
        )
        cells = " | ".join(c or "—" for c in row[1:])
        lines.append(f"| `{cell(row[0])}` | {where} | {cells} |")
    counts = ", ".join(f"`{role}` {sum(1 for e in entries if role in e.roles)}" for role in Role)
    public = sum(1 for e in entries if e.public)
    lines += [
        "",
        f"{len(entries)} endpoints: {public} public; each role may call (beyond them): {counts}.",
    ]
    return "\n".join(lines)


# --- MkDocs events -----------------------------------------------------------------------


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Generate every page, and list the per-service and per-event pages in the nav."""
    PAGES.clear()
    PAGES.update(http_pages())
    FIELD_NOTES.clear()
    FIELD_NOTES.update(field_notes())
    PAGES.update(event_pages())
    http = [{s: f"reference/http/{s}.md"} for s in SERVICES]
    events = sorted(p for p in PAGES if p.startswith("reference/events/"))
    for entry in config.nav or []:
        if isinstance(entry, dict) and "Reference" in entry:
            section = entry["Reference"]
            for item in section:
                if isinstance(item, dict) and "HTTP reference" in item:
                    item["HTTP reference"] = ["reference/http/index.md", *http]
                if isinstance(item, dict) and "Event reference" in item:
                    item["Event reference"] = [
                        "reference/events.md",
                        "reference/channels.md",
                        *[{p.rsplit("/", 1)[-1][:-3]: p} for p in events],
                    ]
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for path, content in PAGES.items():
        files.append(File.generated(config, path, content=content))
    return files


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """The role matrix where its page asks for it. A pipe inside code in a table is written
    ``\\|`` so that GitHub renders the pages too; Python-Markdown already keeps a code span's
    pipes in their cell and would show the backslash, so it is dropped there."""
    page = kwargs.get("page")
    if page is not None and page.file.src_uri == ROLES_PAGE:
        if ROLE_MATRIX not in markdown:
            raise ValueError(f"{ROLES_PAGE} lost its {ROLE_MATRIX} marker")
        markdown = markdown.replace(ROLE_MATRIX, roles_markdown())

    def unescape(code: re.Match[str]) -> str:
        return code.group(0).replace("\\|", "|")

    return "\n".join(
        re.sub(r"`[^`]*`", unescape, line) if line.startswith("|") else line
        for line in markdown.split("\n")
    )
