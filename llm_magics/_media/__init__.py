"""Images and audio: the user-facing objects, sniffing, pixel and audio work, and the
step that fits a request's media to its provider's limits."""
