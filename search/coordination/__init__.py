"""Coordinating the drivers and processes of a study: opening it (`opening`), its Optuna storage
(`storage`), the queue of trials that drivers take (`slots`), which drivers are alive
(`drivers`), the Ray processes of a run (`processes`, `ray_session`)."""
