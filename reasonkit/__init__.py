"""reasonkit: evaluate and post-train video VLM reasoning models for physical AI."""

__version__ = "0.1.0"
