"""Fixtures live in tests/fixtures/, one module per kind of thing they stand up."""

pytest_plugins = [
    "tests.fixtures.services",  # PostgreSQL throwaway database, moto S3 server, SQLite
    "tests.fixtures.models",  # tiny tokenizer/model, memorised TOFU model (cached under .grin/)
    "tests.fixtures.pipeline",  # Prefect API, a published model, forget objects, a GPU worker
]
