"""Settings modules: `base` (everything, env-driven), `local`, `test`, `production`."""
