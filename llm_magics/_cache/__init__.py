"""The response cache: the store, its JSON-only disk, the value codec, the SQL fast path,
the batched writer, the keys every cache shares, and the shared Redis cache
(:mod:`.redis_store`)."""
