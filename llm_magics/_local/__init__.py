"""The embedded model: its files, the worker thread that runs it, and ``serve_local``."""
