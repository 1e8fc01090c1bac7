"""Vectors: embeddings of posts, computed in the background and searched exactly."""
