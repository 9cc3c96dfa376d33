"""A large upload through tus on S3Proxy against a plain boto3 multipart upload, in one run.

    .venv/bin/python bench/upload.py [--size-mib 2048] [--rounds 1]

Starts S3Proxy, a Temporal dev server (the last byte starts a job; no worker polls) and the
API (`python -m api`: uvicorn, its own process) with S3 storage, on free ports. One file of
``--size-mib`` random bytes is uploaded, in each round and alternating order:
- tus: created, then sent as one streamed PATCH by a plain HTTP client (http.client, which
  reads the file as it sends): the API buffers each part on its scratch disk and sends it
  while the next one arrives;
- boto3: `upload_file` with boto3's defaults (8 MiB parts, 10 threads), as `aws s3 cp` does,
  straight to the same S3Proxy.
Prints each row's seconds and MiB/s, the ratio tus/boto3 (goal >= 0.8) and the API's peak
resident memory (VmHWM; goal: under 200 MB whatever the size).
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

from devstack.proc import free_port, start_process, stop_process, wait_for_port  # noqa: E402
from devstack.s3proxy import S3ProxyServer  # noqa: E402
from devstack.temporal import DevServer  # noqa: E402

API_KEY = "bench-upload-key"
BUCKET = "bench-uploads"
GOAL_RATIO = 0.8
GOAL_RSS_MB = 200
MiB = 1024 * 1024


def make_file(path: Path, size: int) -> None:
    with path.open("wb") as out:
        left = size
        while left:
            chunk = os.urandom(min(left, 16 * MiB))
            out.write(chunk)
            left -= len(chunk)


def s3_client(s3: S3ProxyServer):
    return boto3.client(
        "s3",
        endpoint_url=s3.url,
        region_name="us-east-1",
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def api_env(work: Path, s3: S3ProxyServer, temporal: DevServer, port: int) -> dict[str, str]:
    return {
        "SPOOL_TEMPORAL_ADDRESS": temporal.address,
        "SPOOL_DATA_DIR": str(work / "api-data"),
        "SPOOL_STORAGE_URL": f"s3://{BUCKET}/spool",
        "SPOOL_S3_ENDPOINT_URL": s3.url,
        "SPOOL_S3_REGION": "us-east-1",
        "SPOOL_S3_ACCESS_KEY_ID": s3.access_key,
        "SPOOL_S3_SECRET_ACCESS_KEY": s3.secret_key,
        "SPOOL_API_KEYS": f'["{API_KEY}"]',
        "SPOOL_API_PORT": str(port),
        "SPOOL_MAX_UPLOAD_BYTES": str(1 << 40),
        "SPOOL_UPLOAD_MAX_BYTES_PER_KEY": str(1 << 41),
        "TMPDIR": str(work / "api-scratch"),
    }


def tus_upload(base: str, path: Path) -> float:
    """Seconds from the creation to the last PATCH's answer."""
    size = path.stat().st_size
    where = urlsplit(base)
    auth = {"Authorization": f"Bearer {API_KEY}", "Tus-Resumable": "1.0.0"}
    started = time.perf_counter()
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=600, blocksize=MiB)
    conn.request("POST", "/v1/uploads", headers={**auth, "Upload-Length": str(size)})
    created = conn.getresponse()
    created.read()
    assert created.status == 201, created.status
    location = created.getheader("Location")
    headers = {
        **auth,
        "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": "0",
        "Content-Length": str(size),
    }
    with path.open("rb") as body:
        conn.request("PATCH", location, body=body, headers=headers)
        answer = conn.getresponse()
        answer.read()
    assert answer.status == 204, (answer.status, answer.getheader("Upload-Offset"))
    assert answer.getheader("Spool-Job-Id"), "the last byte started no job"
    conn.close()
    return time.perf_counter() - started


def boto3_upload(s3: S3ProxyServer, path: Path, n: int) -> float:
    client = s3_client(s3)
    started = time.perf_counter()
    client.upload_file(str(path), BUCKET, f"plain/{n}.bin")
    return time.perf_counter() - started


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(size: int, rounds: int, work: Path) -> None:
    logs = work / "logs"
    s3 = S3ProxyServer(work / "s3", free_port(), logs / "s3proxy.log")
    temporal = DevServer(port=free_port(), ui_port=None, db_filename=None, log_path=logs / "t.log")
    api = None
    try:
        s3.start()
        s3_client(s3).create_bucket(Bucket=BUCKET)
        temporal.start()
        port = free_port()
        (work / "api-scratch").mkdir()
        api = start_process(
            [sys.executable, "-m", "api"],
            logs / "api.log",
            env=api_env(work, s3, temporal, port),
            cwd=REPO,
        )
        wait_for_port(port, timeout=60)
        source = work / "source.bin"
        make_file(source, size)
        rows: dict[str, list[float]] = {"tus": [], "boto3": []}
        for n in range(rounds):
            order = ["tus", "boto3"] if n % 2 == 0 else ["boto3", "tus"]
            for row in order:
                seconds = (
                    tus_upload(f"http://127.0.0.1:{port}", source)
                    if row == "tus"
                    else boto3_upload(s3, source, n)
                )
                rows[row].append(seconds)
                print(f"round {n + 1} {row:5s} {seconds:7.1f} s {size / MiB / seconds:7.1f} MiB/s")
        report(size, rows, peak_rss_mb(api.pid))
    finally:
        stop_process(api)
        temporal.stop()
        s3.stop()


def report(size: int, rows: dict[str, list[float]], rss_mb: float) -> None:
    tus_s, plain_s = min(rows["tus"]), min(rows["boto3"])
    ratio = plain_s / tus_s
    print(f"\n{size / MiB:.0f} MiB on {platform.node()} ({os.cpu_count()} CPUs), best of each:")
    print(f"  tus through the API  {tus_s:7.1f} s  {size / MiB / tus_s:7.1f} MiB/s")
    print(f"  boto3 multipart      {plain_s:7.1f} s  {size / MiB / plain_s:7.1f} MiB/s")
    print(f"  throughput ratio tus/boto3 = {ratio:.2f} (goal >= {GOAL_RATIO})")
    print(f"  API peak RSS = {rss_mb:.0f} MB (goal < {GOAL_RSS_MB} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spool-bench-upload-") as tmp:
        run(args.size_mib * MiB, args.rounds, Path(tmp))


if __name__ == "__main__":
    main()
