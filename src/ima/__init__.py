"""ima (今, "now"): a real-time assistant over live social streams."""

__version__ = "0.1.0"
