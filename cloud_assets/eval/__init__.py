"""Evaluation, apart from the production path (`defs/`, `lib/`, `report/` never import it): the
notebook's cells as written (`notebook`), the scores of a ranking against injected label errors
(`scoring`) and the fit of the ranking's weights (`weights`). The tests and `bench/` use it."""
