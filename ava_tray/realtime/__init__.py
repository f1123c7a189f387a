"""The OpenAI Realtime API (GA interface): events, the connection, and why a session ended."""
