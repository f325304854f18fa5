"""The fakes in engine/testing are for tests only: no module of the daemon imports them."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imported(path: Path) -> set[str]:
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = ".".join(path.relative_to(ROOT).parts[:-1])
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            prefix = base if node.level else ""
            mod = ".".join(p for p in (prefix, node.module or "") if p)
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


def test_no_daemon_module_imports_engine_testing() -> None:
    offenders = []
    for package in ("engine", "compat_server", "pydockerd"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.is_relative_to(ROOT / "engine" / "testing"):
                continue
            bad = sorted(m for m in _imported(path) if m == "engine.testing" or m.startswith("engine.testing."))
            if bad:
                offenders.append(f"{path.relative_to(ROOT)}: {bad}")
    assert offenders == []


def test_the_check_resolves_relative_imports() -> None:
    found = _imported(ROOT / "engine" / "testing" / "daemon.py")
    assert "engine.testing.runtime.FakeRuntime" in found and "engine.containers.service" in found
