"""Recommending from an index: the indexing workflow, queries, hubness,
playlists and paths, exploration, explanations."""
