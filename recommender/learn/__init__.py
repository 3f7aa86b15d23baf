"""Learning from your labels: labelled datasets and honest splits
(:mod:`.datasets`), classifiers (:mod:`.classifier`), evaluation."""
