"""An editable install's import name: ``import vram_eval`` loads the checkout's ``engine/`` folder.

The wheel maps the folder to its import name at build time (pyproject.toml: ``sources``); an
editable install cannot, so ``_vram_eval_checkout.pth`` imports this module when Python starts and
it adds a finder that answers for ``vram_eval`` alone. Nothing else is imported or run.
"""

import importlib.abc
import importlib.util
import sys
from pathlib import Path

_ENGINE = Path(__file__).resolve().parent.parent.parent / "engine"


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "vram_eval":
            return None  # its submodules are found through the package's __path__ (engine/)
        return importlib.util.spec_from_file_location(
            name, _ENGINE / "__init__.py", submodule_search_locations=[str(_ENGINE)])


if _ENGINE.is_dir() and not any(isinstance(f, _Finder) for f in sys.meta_path):
    sys.meta_path.append(_Finder())
