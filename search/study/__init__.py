"""Defining a study: the study file (`spec`), the search space as one table (`space`) and the
typed `space:` section built from it (`space_model`)."""
