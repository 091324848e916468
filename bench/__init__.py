"""Kiln's benchmark suite: see bench/README.md. Nothing here is imported by Kiln itself."""
