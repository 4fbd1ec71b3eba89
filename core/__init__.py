"""Shared plumbing for every stack: the provider loader, naming and tagging helpers."""
