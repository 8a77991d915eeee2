"""GRIN unlearning as a plain library: tensors, datasets and local paths in and out.

Never imports prefect, sqlalchemy, boto3 or the service layers above it.
"""
