"""The project's logic, free of Dagster, grouped by task: the dataset (`data`), the classifier and
its mistakes (`classifier`), where it looks (`saliency`), the audit of every label (`audit`), the
reviewer's decisions applied (`review`); and what they share: the array store (`store`), a value's
shards (`shards`), progress lines (`progress`), files written whole (`files`)."""
