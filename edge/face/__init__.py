"""The face pipeline's stages: align, quality gates, embed, and the pipeline that chains them after the
detector (plus the closed-set classifier and clustering that work on its embeddings)."""
