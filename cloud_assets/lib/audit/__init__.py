"""The audit of every label out of sample: the folds (`folds`), the fold networks that predict the
images they never saw (`network`), each label's evidence from them (`evidence`), the kinds of label
error (`kinds`), and every label ranked by the fitted ranking trees (`label_issues`)."""
