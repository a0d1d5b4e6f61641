"""The layout CONTRIBUTING.md describes is the one the code has: every module of the package is
in its table, and every import points up that table (a module imports only from rows above its
own, or its own package), lazy imports inside functions included."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "leakwatch"
# Imported by anything: the version string, read by setup too.
ANYWHERE = {"leakwatch._version"}


def rows() -> list[list[str]]:
    """Each table row's names, in order: `errors.py` -> "errors", `probes/` -> "probes"."""
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    out = []
    for line in text.splitlines():
        m = re.match(r"^\| (`[^|]+`) \|", line)
        if m:
            out.append([name.removesuffix(".py").rstrip("/") for name in re.findall(r"`([^`]+)`", m.group(1))])
    return out


def row_of(module: str, table: list[list[str]]) -> int | None:
    """The row of `leakwatch.a.b` (its top-level name: a module or a package)."""
    top = module.split(".")[1] if "." in module else "__init__"
    for i, names in enumerate(table):
        if top in names:
            return i
    return None


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imported(path: Path) -> set[str]:
    """Every leakwatch module `path` imports, at the top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("leakwatch"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("leakwatch") and node.level == 0:
            if node.module == "leakwatch":
                out.update(f"leakwatch.{a.name}" for a in node.names)
            else:
                out.add(node.module)
    return out


def test_every_module_has_a_row_in_the_layout_table():
    table = rows()
    missing = sorted(m for m in modules() if m != "leakwatch" and row_of(m, table) is None)
    assert not missing, f"CONTRIBUTING.md's layout does not name {missing}"


def test_imports_point_up_the_layout_table():
    table = rows()
    wrong = []
    for name, path in modules().items():
        here = row_of(name, table)
        for target in imported(path):
            if target in ANYWHERE:
                continue
            there = row_of(target, table)
            if there is None or here is None or there > here:
                wrong.append(f"{name} imports {target}")
    assert not wrong, "imports that point down the layout (CONTRIBUTING.md): " + "; ".join(sorted(wrong))


def test_nothing_inside_the_package_imports_the_package_root():
    offenders = sorted(
        name for name, path in modules().items() if name != "leakwatch" and "leakwatch" in {t for t in imported(path)}
    )
    assert not offenders
