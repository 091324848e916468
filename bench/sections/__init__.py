"""The bench sections (one module each) and the context they share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.common import KilnPaths, kiln_env

REFERENCE_SIZE = 1000  # the targets are stated at 1,000 files


@dataclass
class BenchContext:
    paths: KilnPaths
    sizes: list[int]
    runs: int
    memory_sizes: list[int]
    api_runs: int
    profile: bool = False
    smoke: bool = False
    checksums: dict[str, str] = field(default_factory=dict)  # template slug → checksum

    def env(self, **extra: str) -> dict[str, str]:
        return kiln_env(self.paths, **extra)

    def code_store(self, slug: str) -> Path:
        """The template's compiled-code store: removing it makes the next generation cold."""
        return self.paths.cache_dir / f"{self.checksums[slug][:32]}.code"

    @property
    def reference_size(self) -> int:
        """Where targets are evaluated: 1,000 files when measured, else the largest size of the run."""
        return REFERENCE_SIZE if REFERENCE_SIZE in self.sizes else max(self.sizes)

    def at_reference(self, goal: str) -> str:
        note = "" if self.reference_size == REFERENCE_SIZE else f" (at N={self.reference_size}, not 1,000)"
        return goal + note
