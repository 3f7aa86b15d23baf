"""Learning from your labels: labelled datasets and honest splits
(:mod:`.datasets`), the classifier (:mod:`.classifier`), its evaluation and
report (:mod:`.evaluate`).  The saved-model format lives in
:mod:`recommender.models.trained`."""
