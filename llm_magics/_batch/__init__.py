"""Many prompts at once: the fan-out engine (:mod:`.fanout`) and provider Batch API jobs
(:mod:`.jobs`, their records :mod:`.job_store` and handles :mod:`.job_handle`)."""
