"""Where the classifier looks: the Guided Grad-CAM engine (`engine`), its saliency methods
(`methods`), and how much of that attention falls on each labelled mask (`attention`)."""
