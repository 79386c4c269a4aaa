"""The vocabulary: messages and responses, the error tree, secrets, settings, formatting.

Imports nothing else of the package."""
