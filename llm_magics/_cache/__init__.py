"""The response cache: the store, its JSON-only disk, the value codec, the SQL fast path
and the batched writer."""
