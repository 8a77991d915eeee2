"""The `grin` command line: `app.py` assembles the sub-commands of `commands/`; `demo.py` is what `grin demo` runs."""
