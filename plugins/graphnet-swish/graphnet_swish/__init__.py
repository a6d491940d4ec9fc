"""An example graphnet op plugin (see the README's "Writing an op plugin")."""
