"""Sub-commands of `grin`, one module each; see flows/cli.py for the conventions."""
