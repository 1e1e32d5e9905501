import subprocess
import sys

import alignjax


def test_alignjax_never_imports_torch():
    code = (
        "import sys, pkgutil, importlib, alignjax\n"
        "for m in pkgutil.walk_packages(alignjax.__path__, 'alignjax.'):\n"
        "    importlib.import_module(m.name)\n"
        "assert 'torch' not in sys.modules, 'alignjax imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_all_lists_strings_that_exist():
    """``from <package> import *`` works for the package and every subpackage."""
    import importlib
    import pkgutil

    packages = ["alignjax"] + [f"alignjax.{m.name}" for m in pkgutil.iter_modules(alignjax.__path__)
                               if m.ispkg and m.name != "app"]
    for pkg in packages:
        module = importlib.import_module(pkg)
        for name in getattr(module, "__all__", ()):
            assert isinstance(name, str), (pkg, name)
            assert hasattr(module, name), f"{pkg}.__all__ lists {name!r}, which it lacks"



def _imports(path):
    """(module, name) of every absolute import in a source file (name None for `import m`)."""
    import ast

    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from ((a.name, None) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield from ((node.module, a.name) for a in node.names)


def test_extractors_import_only_public_alignjax_names():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "extractors"
    files = sorted(root.rglob("*.py"))
    assert files
    private = [f"{p.relative_to(root.parent)}: {mod}" + (f" import {name}" if name else "")
               for p in files for mod, name in _imports(p)
               if mod.split(".")[0] == "alignjax"
               and (any(part.startswith("_") for part in mod.split("."))
                    or (name is not None and name.startswith("_")))]
    assert not private, "extractors/ imports private alignjax modules or names:\n" + \
        "\n".join(private)


def test_io_package_needs_only_numpy():
    """alignjax/io/ and alignjax/errors.py never import jax or torch."""
    from pathlib import Path

    root = Path(alignjax.__file__).parent
    files = sorted((root / "io").glob("*.py")) + [root / "errors.py"]
    heavy = [f"{p.name}: {mod}" for p in files for mod, _ in _imports(p)
             if mod.split(".")[0] in ("jax", "jaxlib", "torch")]
    assert not heavy, heavy
