# One image for every grin role: the Prefect-served flows (`grin serve`), GPU workers (`grin worker`)
# and the CLI. TORCH_INDEX picks the torch build: CPU by default, e.g. .../whl/cu128 for GPU workers.
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GRIN_STATE_DIR=/var/lib/grin \
    PREFECT_SERVER_ANALYTICS_ENABLED=false

RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"
COPY pyproject.toml README.md ./
COPY grin_core ./grin_core
COPY infra ./infra
COPY policy ./policy
COPY tasks ./tasks
COPY flows ./flows
COPY cli ./cli
COPY benchmarks ./benchmarks
COPY migrations ./migrations
RUN pip install .

RUN useradd --create-home grin && mkdir -p /var/lib/grin && chown grin /var/lib/grin
USER grin
ENTRYPOINT ["grin"]
CMD ["--help"]
