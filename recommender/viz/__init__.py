"""Pictures: spectrogram, taggram, confusion matrix, collection map."""
