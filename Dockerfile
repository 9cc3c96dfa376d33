# syntax=docker/dockerfile:1
# One image for every Spool process:
#   spool api  (python -m api)             the HTTP API
#   python -m worker --queue <kind>        a worker (pipeline | media | captions)
#   python -m spool.migrate                one-shot schema migration
#   python /opt/spool/create_bucket.py     one-shot bucket creation
# Debian 12 and Python 3.11: the ffmpeg (5.1) and Python the test suite runs on.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

ARG NODE_IMAGE=node:20-bookworm-slim

# --- page: the web page's hls.js, exactly as package-lock.json pins it (npm ci).
FROM ${NODE_IMAGE} AS page
WORKDIR /page
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund

# --- build: a wheel of the project, so the runtime image gets a regular (non-editable)
# install and no source tree to import from by accident.
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml ./
COPY spool ./spool
COPY workflows ./workflows
COPY activities ./activities
COPY api ./api
COPY worker.py starter.py spool_cli.py ./
# Packaged beside the page (api/static/*), where the API looks when there is no node_modules/.
COPY --from=page /page/node_modules/hls.js/dist/hls.min.js ./api/static/hls.min.js
COPY --from=page /page/node_modules/tus-js-client/dist/tus.min.js ./api/static/tus.min.js
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- runtime
FROM ${PYTHON_IMAGE}

# ffmpeg/ffprobe from Debian (the media worker runs them; the API probes uploads).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/*

# Dependencies exactly as requirements.lock pins them (versions and hashes), then Spool's own
# wheel without resolving anything again: every image built from one commit is the same.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock \
 && rm /tmp/requirements.lock
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-deps /wheels/*.whl

COPY deploy/create_bucket.py /opt/spool/create_bucket.py

# Unprivileged user; /data is the only place Spool writes besides /tmp.
RUN useradd --system --create-home --uid 10001 --user-group spool \
 && install -d -o spool -g spool /data
USER spool
# An empty working directory: Settings also read ./.env, and there is none here.
WORKDIR /home/spool

# HF_HUB_OFFLINE: Whisper loads the model bundled in the image and never calls the Hub.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    SPOOL_DATA_DIR=/data

# Compose sets the command per service; alone, the image runs a worker for every queue.
CMD ["python", "-m", "worker"]
