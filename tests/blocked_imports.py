"""Source text that makes modules unimportable in a child interpreter (`python -c`): for tests that check what runs
without them (the core without Qt, the frozen build without the numpy modules it leaves out)."""

from __future__ import annotations


def blocking(modules: tuple[str, ...], reason: str) -> str:
    """Python source to run first: `modules` and their submodules fail to import with "<name> is blocked: <reason>"
    (any already imported are dropped first)."""
    return f"""
import importlib.abc, sys
BLOCKED = {modules!r}
def _blocked(name):
    return any(name == m or name.startswith(m + ".") for m in BLOCKED)
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if _blocked(name):
            raise ImportError(f"{{name}} is blocked: {reason}")
        return None
sys.meta_path.insert(0, Blocker())
for _name in [n for n in sys.modules if _blocked(n)]:
    del sys.modules[_name]
"""
