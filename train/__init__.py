"""SemanticGen training: cache frozen-encoder outputs (prepare.py), then train stage 1 and stage 2 (one loop)."""
