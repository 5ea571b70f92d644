"""The classifier being audited and its mistakes, as the reference notebook analyses them: the model
file loaded and run (`model`), a changed model file noticed (`model_watch`), probability thresholds
per precision and recall level (`thresholds`), confusion matrices and TP/FP/FN sets (`mistakes`)."""
