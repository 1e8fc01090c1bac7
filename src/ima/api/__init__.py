"""The HTTP API: OpenAI/xAI-compatible chat and responses, search, posts, keys and quotas."""
