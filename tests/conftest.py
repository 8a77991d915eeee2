"""Fixtures live in tests/fixtures/, one module per kind of thing they stand up."""

pytest_plugins = [
    "tests.fixtures.services",  # PostgreSQL throwaway database, moto S3 server, SQLite
    "tests.fixtures.models",  # tiny tokenizer/model, memorised TOFU model (cached under .grin/)
    "tests.fixtures.pipeline",  # Prefect API, a published model, forget objects, a GPU worker
]


def pytest_collection_modifyitems(items) -> None:
    """Slow files first: the two processes of `make test` (one test file at a time each) then start on the
    long files and end on short ones, instead of one process running a long file while the other waits."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
