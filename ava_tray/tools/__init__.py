"""Tools the model can call, long-term memory in every session, and reminders (see registry.py)."""

from ava_tray.tools.registry import Tool, ToolError, ToolRegistry, make_tool, tool

__all__ = ["Tool", "ToolError", "ToolRegistry", "make_tool", "tool"]
