"""The Ray side of a study: the Tune experiment (`tuner`), the function trainable that trains
and evaluates one trial (`trainable`), live progress lines (`progress`) and where checkpoints
live (`checkpoint_store`)."""
