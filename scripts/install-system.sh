#!/usr/bin/env bash
# Installs the Debian packages Spool's pipelines and tests run: ffmpeg/ffprobe (media),
# espeak-ng (spoken test clips), chromium + chromedriver (browser tests), Java (the test
# Elasticsearch node and S3Proxy), PostgreSQL (the database tests) and nginx (the TLS proxy in
# front of Temporal in the TLS tests).
# Idempotent: does nothing when everything is already there.
set -euo pipefail
need=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need+=(ffmpeg)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v unzip >/dev/null || need+=(unzip)
command -v npm >/dev/null || need+=(npm)  # installs the page's hls.js (make install)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
# Maven fetches the test Elasticsearch and S3Proxy from Maven Central; util-linux's unshare
# isolates make cluster's hosts. (Go, which builds the Compose CLI that checks
# docker-compose.yml, must be 1.23 or newer: Debian 12's golang-go is older, so it is not
# installed from here; tests/test_compose.py names it when it is missing.)
command -v mvn >/dev/null || need+=(maven)
command -v unshare >/dev/null && command -v setpriv >/dev/null || need+=(util-linux)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
echo "installing system packages: ${need[*]}"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
