"""The kinds of label error, each named once.

An *issue kind* is what `label_issues` suspects of a label and what an accepted review decision
does (`lib.review`); a *noise kind* is an error `cloud-assets synth`/`renoise` injects
(`synth.noise`, listed in `label_noise.csv`). `ISSUE_OF_NOISE` says which issue kind finds, and
whose accepted fix undoes, each noise kind.
"""
MISSING, CONFUSION, SPURIOUS, LOOSE, NODATA = (
    "missing label", "class confusion", "spurious label", "loose mask", "no-data artefact")
ISSUE_KINDS = (SPURIOUS, CONFUSION, MISSING, LOOSE, NODATA)

ISSUE_OF_NOISE = {
    "missing": MISSING,      # a pattern left unlabelled
    "swapped": CONFUSION,    # a pattern labelled as another class
    "spurious": SPURIOUS,    # a box where no pattern of the class is
    "shifted": LOOSE,        # a box beside its pattern
    "wide": LOOSE,           # a box grown around its pattern
    "small": LOOSE,          # a box shrunk inside its pattern
    "merged": LOOSE,         # one box around two patches
}
NOISE_KINDS = tuple(ISSUE_OF_NOISE)
