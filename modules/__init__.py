"""Reusable constructs: each takes one frozen props object and exposes what others need."""
