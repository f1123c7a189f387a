"""AVA as an MCP host: the servers of mcp.json, their tools declared in every Realtime session.

`host.McpHost` (started by `ToolBox.running()`) reads `config`, keeps one `connection.ServerConnection`
per server (the only module that loads the `mcp` SDK) and registers the tools `adapt` makes of theirs;
`status` is what the status window and the Settings page show.
"""
