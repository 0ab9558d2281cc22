"""What a study records and reads back. `trial_record`: the report a Ray trial sends, its status
and every attribute name; `searcher`: the Ray Tune searcher that asks and tells the Optuna study;
`evaluation_record`: each evaluation stored on its trial; `retention`: which checkpoints stay;
`ranking`, `summary`, `export`, `report`: reading the study back."""
