"""Hybrid batch training for multilingual dense retrieval (arXiv 2408.10536)."""
