"""The package's layout: which modules stand at the top, what each package may import (as its docstring
says), and no import circle, checked by reading every import with `ast` and by importing every module
first in a fresh interpreter."""

from __future__ import annotations

import ast
import graphlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "brightrun"
TOP_MODULES = {"__init__", "__main__", "errors", "secrets", "aio", "demo"}
RULE = re.compile(r"^May import: (.+?)\.?$", re.M)
OUTSIDE = re.compile(r"^Outside BrightRun, only: (.+?)\.?$", re.M)
# the packages this issue made; their faces re-export only what other places use
NEW_PACKAGES = ["cli", "doctor", "enrichment", "explore", "prompts", "scaffolding", "ui"]


def units() -> dict[str, list[Path]]:
    """Each package (a folder with __init__.py) and each top-level module, with its files."""
    found = {p.stem: [p] for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    for folder in sorted(PACKAGE.iterdir()):
        if (folder / "__init__.py").is_file():
            found[folder.name] = sorted(folder.rglob("*.py"))
    return found


def docstring(unit: str) -> str:
    path = PACKAGE / unit / "__init__.py" if (PACKAGE / unit).is_dir() else PACKAGE / f"{unit}.py"
    return ast.get_docstring(ast.parse(path.read_text())) or ""


def split_names(text: str) -> set[str]:
    text = text.replace(" and ", ", ")
    names = {n.strip() for n in text.split(",") if n.strip()}
    return set() if names == {"nothing from BrightRun"} else names


def rules() -> dict[str, set[str]]:
    out = {}
    for unit in units():
        match = RULE.search(docstring(unit))
        if match:
            out[unit] = split_names(match.group(1))
    return out


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module an import statement names (at the top, in a function, under TYPE_CHECKING)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "brightrun":
                found += [(node.lineno, f"brightrun.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{path}:{node.lineno}: relative import; write the whole brightrun path")
    return found


def unit_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "brightrun" and len(parts) > 1 else None


def test_only_the_allowed_modules_stand_at_the_top() -> None:
    assert {p.stem for p in PACKAGE.glob("*.py")} == TOP_MODULES


def test_every_package_and_top_module_says_what_it_may_import() -> None:
    missing = sorted(set(units()) - set(rules()))
    assert not missing, f"no 'May import:' line in the docstring of: {missing}"
    unknown = {u: sorted(r - set(units())) for u, r in rules().items() if r - set(units())}
    assert not unknown, f"'May import:' names that are no package or module of brightrun: {unknown}"


@pytest.mark.parametrize("unit", sorted(units()))
def test_each_package_imports_only_what_its_docstring_allows(unit: str) -> None:
    allowed = rules()[unit] | {unit}
    outside = OUTSIDE.search(docstring(unit))
    outside_allowed = split_names(outside.group(1)) if outside else None
    broken = []
    for path in units()[unit]:
        for line, module in imports(path):
            target = unit_of(module)
            if target is not None and target not in allowed:
                broken.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
            top = module.split(".")[0]
            if (target is None and top != "brightrun" and outside_allowed is not None
                    and top not in sys.stdlib_module_names and top != "__future__" and top not in outside_allowed):
                broken.append(f"{path.relative_to(ROOT)}:{line} imports {module} (outside BrightRun)")
    assert not broken, f"{unit} may import only {sorted(allowed)}:\n" + "\n".join(broken)


def test_the_rules_have_no_circle() -> None:
    # every import keeps to its package's rule (above), so an acyclic set of rules means no circle in the code
    list(graphlib.TopologicalSorter(rules()).static_order())


def test_the_docstring_rules_are_no_wider_than_the_code() -> None:
    # a rule that names a package the code never imports is out of date: say what is, not what might be
    used: dict[str, set[str]] = {u: set() for u in units()}
    for unit, paths in units().items():
        for path in paths:
            used[unit] |= {t for _, m in imports(path) if (t := unit_of(m)) and t != unit}
    wide = {u: sorted(r - used[u]) for u, r in rules().items() if r - used[u]}
    assert not wide, f"rules naming packages the code does not import: {wide}"


def test_duckdb_is_the_workspace_s_alone_and_streamlit_the_pages_() -> None:
    owners = {"duckdb": {"workspace"}, "streamlit": {"ui", "secrets"}}
    broken = []
    for unit, paths in units().items():
        for path in paths:
            for line, module in imports(path):
                top = module.split(".")[0]
                if top in owners and unit not in owners[top]:
                    broken.append(f"{path.relative_to(ROOT)}:{line} imports {top}")
    assert not broken, "\n".join(broken)


def page_files() -> list[Path]:
    return [ROOT / "app.py", *sorted((ROOT / "pages").rglob("*.py"))]


def test_pages_import_the_ui_and_domain_packages_never_storage_internals_or_the_cli() -> None:
    broken = []
    for path in page_files():
        for line, module in imports(path):
            parts = module.split(".")
            if parts[0] == "brightrun" and (len(parts) < 2 or parts[1] in {"cli", "__main__"}
                                            or (parts[1] == "workspace" and len(parts) > 2)):
                broken.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
            if parts[0] == "duckdb":
                broken.append(f"{path.relative_to(ROOT)}:{line} imports duckdb")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("unit", NEW_PACKAGES)
def test_a_package_face_hands_on_only_what_other_places_use(unit: str) -> None:
    init = PACKAGE / unit / "__init__.py"
    tree = ast.parse(init.read_text())
    exported = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            exported |= {a.asname or a.name for a in node.names}
    users = [p for u, paths in units().items() if u != unit for p in paths] + page_files()
    users += sorted((ROOT / "notebooks").glob("*.ipynb"))
    text = "\n".join(p.read_text() for p in users)
    unused = sorted(n for n in exported if not re.search(rf"from brightrun\.{unit} import [^\n]*\b{n}\b"
                                                          rf"|from brightrun\.{unit} import \([^)]*\b{n}\b"
                                                          rf"|\b{unit}\.{n}\b", text))
    assert not unused, f"brightrun/{unit}/__init__.py hands on names no other place imports: {unused}"


def all_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts[-1] != "__main__":
            names.append(".".join(parts))
    return names


FORK_EACH = r"""
import importlib, os, sys, traceback
for lib in ("polars", "duckdb", "pydantic", "orjson", "yaml", "numpy", "scipy.stats", "statsmodels.api",
            "anthropic", "openai", "streamlit", "plotly.graph_objects", "typer", "rich", "pyarrow", "filelock",
            "great_expectations"):
    try:
        importlib.import_module(lib)   # third-party only: no brightrun module is loaded before the fork
    except ImportError:
        pass
assert not [m for m in sys.modules if m.startswith("brightrun")]
failed = 0
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            print(f"--- importing {name} first:", flush=True)
            traceback.print_exc()
            sys.stdout.flush()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    failed += status != 0
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    # each module is the first brightrun module its (forked) interpreter loads, so a circle that only
    # shows in one import order fails here
    modules = all_modules()
    assert len(modules) > 80
    result = subprocess.run([sys.executable, "-c", FORK_EACH, *modules], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_circle_between_modules_even_through_lazy_imports() -> None:
    # an import inside a function still ties two modules into one circle; none is allowed
    known = {module_of(p) for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        me = module_of(path)
        targets = set()
        for _, module in imports(path):
            while module and module not in known:
                module = module.rpartition(".")[0]
            if module and module != me and not me.startswith(module + "."):  # a package's own face aside
                targets.add(module)
        graph[me] = targets
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"import circle: {' -> '.join(exc.args[1])}") from None
