"""PyInstaller hook for pydantic (instead of the contrib one): its submodules (pydantic imports many lazily), but not
the mypy plugin, which imports mypy (3.4 MB in the bundle), nor the legacy `pydantic.v1` API: the MCP SDK, the only
user of pydantic in AVA, uses neither."""

from PyInstaller.utils.hooks import collect_submodules

hiddenimports = collect_submodules(
    "pydantic", filter=lambda name: not name.startswith(("pydantic.mypy", "pydantic.v1")))
