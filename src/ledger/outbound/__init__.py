"""Outbound I/O the engine asks for through its ports' callables: the
webhook client (`Send`, `Resolve`). Imports the engine's records only,
never the API (which is inbound) or storage."""
