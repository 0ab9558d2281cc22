"""voxgan's search harness, installed as the package `voxgan_search` (its source folder is
`search/`; a top-level name `search` could be shadowed by another distribution's).

A trial's life, by role: the study is defined in `voxgan_search.study` (the study file, the space
table), the drivers that share it coordinate in `voxgan_search.coordination` (storage, queue,
heartbeats, Ray's processes), Ray Tune trains and evaluates it in `voxgan_search.tuning`, and
`voxgan_search.records` records it in the Optuna study and reads the study back. `runner` runs a
study from top to bottom; `cli` is `voxgan-search`.
"""
