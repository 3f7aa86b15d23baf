"""Persistence: the SQLite catalog (source of truth, :mod:`.catalog`), the
FAISS files derived from it (:mod:`.faiss_index`) and the vector spaces
(:mod:`.spaces`)."""
