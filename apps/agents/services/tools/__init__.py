"""Kiln's curated agent tools; importing this package registers every tool module.

See `registry.py`. One module per area; a new tool is one `@register_tool` entry in one.
"""

from __future__ import annotations

from apps.agents.services.tools import catalog, exports, generation, projects, updates  # noqa: F401 - registers the tools
from apps.agents.services.tools.registry import (
    TOOLS,
    AgentTool,
    ToolCall,
    ToolOutcome,
    call_tool,
    register_tool,
    tools,
)

__all__ = ["TOOLS", "AgentTool", "ToolCall", "ToolOutcome", "call_tool", "register_tool", "tools"]
