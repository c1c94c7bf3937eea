"""Archive throughput: rtpvault's uploader (durable queue rows, SHA-256 sent and read back with
head_object) against the local S3 API (moto_server on loopback), in MB/s, next to bare boto3
`upload_file` loops over the same files (no checksum, no queue, no read-back) with one thread
and with as many threads as the uploader has workers.

rtpengine 10.5 has no equivalent to run side by side: it has no archive queue (its newer S3
output is one PUT per file, no retry, no read-back), so the bare boto3 loops are the reference.
Repetitions are interleaved (bare, bare-N, rtpvault, bare, …) and medians reported, because the
machine is shared.

    .venv/bin/python bench/upload.py [--files 40] [--size-mb 2] [--workers 2] [--repeat 3]
    .venv/bin/python bench/upload.py --files 6 --size-mb 24      # multipart (16 MiB threshold)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage.db import open_index  # noqa: E402
from storage.ingest import upsert_sidecar  # noqa: E402
from storage.models import Recording  # noqa: E402
from storage.uploader import S3Settings, Uploader, enqueue, file_sha256  # noqa: E402
from tests.support.s3 import ENV, MotoServer  # noqa: E402


def bare(client: Any, files: list[Path], threads: int, tag: str) -> float:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda p: client.upload_file(str(p), "bench", f"{tag}/{p.name}"), files))
    return time.perf_counter() - t0


def ours(work: Path, endpoint: str, files: list[Path], args: argparse.Namespace, rep: int) -> float:
    index = open_index(f"sqlite:///{work}/index-{rep}.db", create=True)
    st = S3Settings(
        bucket="bench",
        endpoint_url=endpoint,
        region="us-east-1",
        workers=args.workers,
        prefix=f"ours{rep}/",
        multipart_threshold=int(args.multipart_mb * 2**20),
    )
    now = time.time()
    with index.session() as s:
        for p in files:
            rec = upsert_sidecar(
                s,
                {
                    "id": str(uuid.uuid4()),
                    "node": "bench",
                    "call_id": p.stem,
                    "started": now,
                    "ended": now,
                    "status": "complete",
                    "path": str(p),
                    "size": p.stat().st_size,
                    "sha256": file_sha256(str(p)),
                },
            )
            enqueue(s, rec, st, now)
    up = Uploader(index, st, "bench")
    t0 = time.perf_counter()
    up.start()
    while up.results["done"] + up.results["failed"] < len(files):
        time.sleep(0.005)
    elapsed = time.perf_counter() - t0
    up.stop()
    with index.session() as s:
        archived = sum(1 for r in s.query(Recording) if r.archive_state == "archived")
    index.close()
    if archived != len(files):
        raise SystemExit(f"only {archived}/{len(files)} archived: {up.results}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--size-mb", type=float, default=2.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--multipart-mb", type=float, default=16.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.update(ENV)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = MotoServer(work)
        server.start()
        try:
            client = server.client
            client.create_bucket(Bucket="bench")
            size = int(args.size_mb * 2**20)
            files = []
            for i in range(args.files):
                p = work / f"rec-{i}.pcap"
                p.write_bytes(os.urandom(size))
                files.append(p)
            total_mb = args.files * size / 2**20
            runs: dict[str, list[float]] = {"bare1": [], "bareN": [], "ours": []}
            for rep in range(args.repeat):
                runs["bare1"].append(total_mb / bare(client, files, 1, f"b1-{rep}"))
                runs["bareN"].append(total_mb / bare(client, files, args.workers, f"bn-{rep}"))
                runs["ours"].append(total_mb / ours(work, server.endpoint, files, args, rep))
        finally:
            server.stop()
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(
        f"files {args.files} x {args.size_mb} MB, workers {args.workers}, "
        f"{args.repeat} interleaved repetitions, medians (MB/s):"
    )
    for key, label in (
        ("bare1", "boto3 upload_file, 1 thread"),
        ("bareN", f"boto3 upload_file, {args.workers} threads"),
        ("ours", "rtpvault uploader (queue + SHA-256 read back)"),
    ):
        each = " ".join(f"{v:.1f}" for v in runs[key])
        print(f"  {label:48s} {med[key]:8.1f}   [{each}]")
    print(
        f"  ratio rtpvault / bare {args.workers} threads: {med['ours'] / med['bareN']:.2f}x, "
        f"/ bare 1 thread: {med['ours'] / med['bare1']:.2f}x"
    )


if __name__ == "__main__":
    main()
