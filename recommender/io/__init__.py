"""Input: decode any common audio format (:mod:`.audio`), walk a collection
and read its tags (:mod:`.collection`), the synthetic demo collection
(:mod:`.demo`)."""
