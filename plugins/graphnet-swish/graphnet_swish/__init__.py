"""An example graphnet op plugin: the swish activation (docs/plugins.md is the guide)."""
