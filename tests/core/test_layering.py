"""Import rules of the layout: the engine never imports the HTTP layer, and the route modules
import each other in one direction only (no cycle). Read from the source, nothing imported."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _imports(path: Path, package: str) -> set[str]:
    """The absolute module names ``path`` imports (relative imports resolved against ``package``)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = parts[: len(parts) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def _module(path: Path) -> tuple[str, str]:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
        return ".".join(parts), ".".join(parts)
    return ".".join(parts), ".".join(parts[:-1])


def test_the_engine_never_imports_the_http_layer() -> None:
    offenders = []
    for path in sorted((REPO / "engine").rglob("*.py")):
        name, package = _module(path)
        if any(m == "compat_server" or m.startswith("compat_server.") for m in _imports(path, package)):
            offenders.append(name)
    assert not offenders


def test_route_modules_import_each_other_without_a_cycle() -> None:
    routes = {(_module(p)[0]): p for p in (REPO / "compat_server" / "routes").glob("*.py")}
    graph = {name: {m for m in _imports(path, _module(path)[1]) if m in routes and m != name}
             for name, path in routes.items()}
    assert "compat_server.routes.images" not in graph["compat_server.routes.distribution"]
    done: set[str] = set()

    def visit(node: str, stack: tuple[str, ...]) -> None:
        assert node not in stack, f"import cycle: {' -> '.join((*stack, node))}"
        if node in done:
            return
        for nxt in graph[node]:
            visit(nxt, (*stack, node))
        done.add(node)

    for name in graph:
        visit(name, ())
