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
    for name in alignjax.__all__:
        assert isinstance(name, str)
        assert hasattr(alignjax, name), name
