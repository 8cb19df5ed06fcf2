"""assignment's OpenAPI document: the claim, served directly (no dependencies), is documented like the other routes."""

from __future__ import annotations

from services.assignment.main import build_app


def test_the_claim_is_documented_with_its_path_parameter_and_its_answer():
    app = build_app()
    operation = app.openapi()["paths"]["/leads/{lead_id}/claim"]["post"]
    assert operation["summary"] == "Claim a lead for yourself"
    assert operation["parameters"] == [
        {"name": "lead_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
    ]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/OwnershipOut"}
    assert [getattr(route, "path", None) for route in app.router.routes].count("/leads/{lead_id}/claim") == 1
