"""Many prompts at once: the fan-out engine (:mod:`.fanout`), provider Batch API jobs
(:mod:`.jobs`, their records :mod:`.job_store` and handles :mod:`.job_handle`), and the Ray
engine (:mod:`.ray_engine` on the driver, :mod:`.ray_worker` in the actors, the job's
:mod:`.ray_coordinator`, the shared key pool :mod:`.ray_keys`, and :mod:`.ray_spec`: a
client and its secrets as workers receive them)."""
