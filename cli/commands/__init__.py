"""Sub-commands of `grin`, one module each; see cli/app.py for the conventions."""
