# One image for every Spool process: the worker (any queue) and the API.
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY spool ./spool
COPY workflows ./workflows
COPY activities ./activities
COPY api ./api
COPY devstack ./devstack
COPY worker.py starter.py ./
RUN pip install --no-cache-dir .

RUN useradd --system --uid 10001 spool && mkdir -p /data && chown spool /data
USER spool
ENV SPOOL_DATA_DIR=/data HF_HUB_OFFLINE=1
CMD ["python", "worker.py"]
