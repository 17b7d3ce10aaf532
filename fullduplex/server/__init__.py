"""The duplex server: Moshi's WebSocket protocol, many sessions stepped together, the browser client."""
