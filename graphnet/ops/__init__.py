"""graphnet's built-in ops, one per module, registered through the ``graphnet.ops`` entry points
in graphnet's own pyproject.toml (the same path a plugin takes). Nothing is imported here: the
registry imports an op's module the first time the op is needed."""
