"""drf-spectacular extensions: how Kiln's token authentication appears in the schema."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class HashedTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.accounts.authentication.HashedTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <token>` — a user token from POST /api/v1/auth/token/ or an agent token.",
        }


def integer_path_ids(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Every `id` / `*_id` path parameter is a database id: say so (integer, minimum 1)."""
    for item in result.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                name = parameter.get("name", "")
                if parameter.get("in") == "path" and (name == "id" or name.endswith("_id")):
                    parameter["schema"] = {"type": "integer", "minimum": 1}
    return result


class KilnSessionScheme(OpenApiAuthenticationExtension):
    target_class = "apps.accounts.authentication.KilnSessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}


ERROR_SCHEMA = {
    "type": "object",
    "required": ["message", "code", "extra"],
    "properties": {
        "message": {"type": "string"},
        "code": {"type": "string"},
        "extra": {"type": "object", "additionalProperties": True},
    },
}
# Answers any operation may give, beyond what each view declares.
COMMON_ERRORS = {
    "400": "Invalid input: `{message, code, extra}` (field errors in `extra.fields`)",
    "401": "Not authenticated",
    "403": "The caller's role does not allow this",
    "404": "Not found, or not visible to the caller",
    "405": "Method not allowed",
    "409": "Conflicts with the object's state",
    "413": "Request body too large",
    "429": "Throttled, or too many active jobs (see Retry-After)",
}


def documented_errors(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Every operation documents Kiln's error shape for its possible 4xx answers, and
    request bodies reject fields they do not declare, as the strict input serializers do."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    reference = {"$ref": "#/components/schemas/Error"}
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            codes = dict(COMMON_ERRORS)
            if method == "post" and (path.endswith("/verify/") or path.endswith("/exports/")):
                codes["502"] = "The provider failed or could not be reached"
            if path.endswith("/content/") or path.endswith("/download/"):
                codes["410"] = "The generated files or the archive were removed (retention)"
            for code, description in codes.items():
                response = responses.setdefault(code, {"description": description})
                response.setdefault("content", {"application/json": {"schema": reference}})
    for name, schema in components.items():
        if name.endswith("Request") and schema.get("type") == "object":
            schema.setdefault("additionalProperties", False)
    return result
