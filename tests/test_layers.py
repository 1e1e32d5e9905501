"""The layers of the tree: the core never imports the application or the torch side, and
the application uses only public names of the core (tests/test_imports.py checks the
torch side)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "alignjax"
APP = CORE / "app"


def _imports(path: Path):
    """Absolute module names imported by ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    pkg = list(path.relative_to(ROOT).with_suffix("").parts)
    pkg = pkg[:-1] if pkg[-1] != "__init__" else pkg[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []
        elif isinstance(node, ast.ImportFrom):
            base = pkg[: len(pkg) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            yield mod, [a.name for a in node.names]


def _core_files():
    return [p for p in CORE.rglob("*.py") if APP not in p.parents]


def test_core_never_imports_the_application_or_the_torch_side():
    bad = []
    for p in _core_files():
        for mod, _ in _imports(p):
            if mod.startswith(("alignjax.app", "extractors", "torch", "transformers")):
                bad.append(f"{p.relative_to(ROOT)} imports {mod}")
    assert bad == []


def test_the_application_uses_only_public_names_of_the_core():
    bad = []
    for p in APP.rglob("*.py"):
        for mod, names in _imports(p):
            if not mod.startswith("alignjax") or mod.startswith("alignjax.app"):
                continue
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            if any(part.startswith("_") for part in mod.split(".")) or private:
                bad.append(f"{p.relative_to(ROOT)}: {mod} {private}")
    assert bad == []
