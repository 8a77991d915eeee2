"""TOFU and GRIN metrics as plain functions; each module's docstring says what it measures."""
