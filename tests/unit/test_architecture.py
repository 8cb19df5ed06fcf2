"""The house rules: services never import each other, shared never imports a service, no grab-bags."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists())


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service(service):
    others = [s for s in SERVICES if s != service]
    for path in (ROOT / "services" / service).rglob("*.py"):
        for module in imports_of(path):
            for other in others:
                assert not module.startswith(f"services.{other}"), f"{path.relative_to(ROOT)} imports {module}"


def test_shared_imports_no_service():
    for path in (ROOT / "shared").rglob("*.py"):
        assert not any(m.startswith("services") for m in imports_of(path)), path


def test_no_grab_bag_modules():
    for folder in ("shared", "services"):
        for path in (ROOT / folder).rglob("*.py"):
            assert path.stem not in {"utils", "helpers", "misc", "common"}, path


def test_every_service_has_the_four_endpoints_wired_through_the_shared_shell():
    for service in SERVICES:
        main = (ROOT / "services" / service / "main.py").read_text(encoding="utf-8")
        assert "create_service_app(" in main, f"{service} must build its app with shared.service"
