"""What a study records and reads back: the names and types of a trial's record
(`trial_record`), the Ray Tune searcher that asks and tells the Optuna study (`searcher`), each
evaluation stored on its trial (`evaluation_record`), which checkpoints are kept (`retention`),
and reading a study back (`results`)."""
