"""Many prompts at once: the fan-out engine."""
