"""engine/oci is pure: it turns typed inputs into config.json and touches nothing (issue 8).

Checked on the source: no module of engine/oci imports the runtime, the container service,
the snapshotter or anything that does I/O, and none calls a function that reads or changes the
filesystem.  The bundle step (engine/containers/hostaccess.py) does that for it."""
from __future__ import annotations

import ast
from pathlib import Path

OCI = Path(__file__).resolve().parents[2] / "engine" / "oci"

FORBIDDEN_MODULES = ("engine.runtime", "engine.containers", "engine.snapshots", "engine.images",
                     "engine.state", "subprocess", "shutil", "ctypes", "pathlib", "tempfile", "io")
# os.<name> allowed: path arithmetic and the kernel's name/version
ALLOWED_OS = {"path.join", "uname"}
FORBIDDEN_CALLS = {"open", "mount", "umount2", "write_text", "write_bytes", "read_text", "read_bytes",
                   "mkdir", "makedirs", "unlink", "rename", "chmod", "walk", "stat", "listdir", "scandir"}


def _modules() -> list[Path]:
    files = sorted(OCI.glob("*.py"))
    assert files, OCI
    return files


def _imports(tree: ast.AST, package: str) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                out.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                out.add(node.module)
    return out


def test_oci_imports_nothing_that_touches_the_host() -> None:
    bad = []
    for path in _modules():
        for name in _imports(ast.parse(path.read_text()), "engine.oci"):
            if any(name == m or name.startswith(m + ".") for m in FORBIDDEN_MODULES):
                bad.append(f"{path.name}: {name}")
    assert bad == []


def test_oci_calls_nothing_that_reads_or_changes_files() -> None:
    bad = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            dotted = ast.unparse(func)
            if dotted.startswith("os.") and dotted[3:] not in ALLOWED_OS:
                bad.append(f"{path.name}:{node.lineno}: {dotted}")
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in FORBIDDEN_CALLS:
                bad.append(f"{path.name}:{node.lineno}: {dotted}")
    assert bad == []


def test_the_checks_see_a_violation(tmp_path: Path) -> None:
    """The two checks above would fail on an impure module (they are not vacuous)."""
    tree = ast.parse("import os\nfrom engine.runtime import syscalls\nos.makedirs('x')\nopen('f', 'w')\n")
    assert "engine.runtime" in _imports(tree, "engine.oci")
    calls = [ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert "os.makedirs" in calls and "open" in calls
