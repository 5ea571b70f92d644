"""The levels and sizes that more than one place uses, named once."""

PRECISION_LEVEL = 90               # the notebook's: TP/FP/FN sets and the class pages at 90% precision
CONFUSION_LEVELS = (80, 95)        # confusion matrices besides PRECISION_LEVEL
SUMMARY_LEVELS = (50, 80, 90, 95)  # the precision/recall levels threshold_maps lists in its metadata
MARK_LEVELS = (80, 90, 95)         # marked on the report's threshold charts
ARRAY_BATCH = 256                  # images (or (class, image) pairs) per batch in loops over stored arrays
GALLERY = 8                        # report: images per gallery row group, the notebook's 2 rows of 4
SAMPLE_SEED = 10                   # report: galleries sample with this seed, so two builds are identical
ISSUES_SHOWN = 1000                # report: label-issue candidates drawn, to review, on the Label issues page
ISSUES_LISTED = 50                 # report and metadata: candidates listed in a table
ISSUES_COUNTED = 100               # report: candidates whose suspected kinds are counted
METADATA_ROWS = 15                 # rows of a table shown in an asset's metadata
JPEG_QUALITY = 75                  # report images (the demo's site within 30 MB)
