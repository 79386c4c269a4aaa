"""The client users hold, and what it stands on: the request pipeline, the registry,
key pools, usage and cost accounting."""
