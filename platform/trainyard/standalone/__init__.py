"""The local runtime: the platform's real services as processes on one machine."""
