"""``python -m services.intake.importer FILE --url http://localhost:8001 --token JWT``: import a large CSV file.

The file is read as a stream and sent to ``POST /leads/import`` in pieces of ``--rows`` records (re-encoded
as UTF-8, the header repeated, row numbers kept), so the progress shown is progress the service has
acknowledged, and recorded. Importing is idempotent: after an interruption, run the same command again;
rows already recorded come back as duplicates and the rest of the file is completed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from services.intake.csv_rows import decode, lines

READ_SIZE = 256 * 1024
RETRYABLE = {502, 503, 504}


class ImportFailed(RuntimeError):
    pass


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    while chunk := file.read(READ_SIZE):
        yield chunk


def pieces(file: BinaryIO, rows: int, encoding: str | None) -> Iterator[tuple[int, bytes]]:
    """(row offset, UTF-8 CSV with the header) per ``rows`` records; blank records are kept so numbers stay true."""
    records = csv.reader(lines(decode(_chunks(file), encoding)))
    header = next((record for record in records if any(cell.strip() for cell in record)), None)
    if header is None:
        raise ImportFailed("the file has no header row")
    offset, batch = 0, []
    for record in records:
        batch.append(record)
        if len(batch) == rows:
            yield offset, _encode(header, batch)
            offset += len(batch)
            batch = []
    if batch:
        yield offset, _encode(header, batch)


def _encode(header: list[str], records: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(records)
    return out.getvalue().encode("utf-8")


def send(client: httpx.Client, url: str, body: bytes, offset: int, attempts: int = 5) -> dict[str, Any]:
    """POST one piece; retried on connection errors and 502/503/504 (safe: importing a row twice records it once)."""
    for attempt in range(attempts):
        try:
            response = client.post(
                f"{url}/leads/import", params={"row_offset": offset}, content=body, headers={"content-type": "text/csv"}
            )
        except httpx.TransportError as exc:
            error = str(exc) or type(exc).__name__
        else:
            if response.status_code == 200:
                return response.json()
            if response.status_code not in RETRYABLE:
                raise ImportFailed(f"HTTP {response.status_code}: {response.text[:1000]}")
            error = f"HTTP {response.status_code}"
        time.sleep(min(2**attempt, 10))
        print(f"\nretrying after {error}", file=sys.stderr)
    raise ImportFailed(f"gave up after {attempts} attempts")


def run(path: Path, url: str, token: str, rows: int, encoding: str | None, quiet: bool) -> dict[str, Any]:
    totals: dict[str, Any] = {"created": 0, "duplicates": 0, "invalid": [], "rows": 0, "ignored_columns": []}
    size = max(path.stat().st_size, 1)
    started = time.monotonic()
    with path.open("rb") as file, httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=300) as client:
        for offset, body in pieces(file, rows, encoding):
            report = send(client, url.rstrip("/"), body, offset)
            for key in ("created", "duplicates", "rows"):
                totals[key] += report[key]
            totals["invalid"].extend(report["invalid"])
            totals["ignored_columns"] = report["ignored_columns"]
            if not quiet:
                elapsed = max(time.monotonic() - started, 1e-6)
                print(
                    f"\r{100 * file.tell() / size:5.1f}%  {totals['rows']:,} rows  {totals['created']:,} created  "
                    f"{totals['duplicates']:,} duplicates  {len(totals['invalid']):,} invalid  "
                    f"{totals['rows'] / elapsed:,.0f} rows/s",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
    if not quiet:
        print(file=sys.stderr)
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.intake.importer", description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="CSV file (UTF-8 with or without BOM, or GB18030)")
    parser.add_argument("--url", default=os.environ.get("LEADFLOW_INTAKE_URL", "http://localhost:8001"), help="intake's URL")
    parser.add_argument("--token", default=os.environ.get("LEADFLOW_TOKEN"), help="a JWT (or LEADFLOW_TOKEN)")
    parser.add_argument("--rows", type=int, default=5000, help="records per request (default 5000)")
    parser.add_argument("--encoding", help="the file's encoding, if guessing is not enough (e.g. gb18030)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("a token is needed: --token or LEADFLOW_TOKEN (mint one: python -m shared.auth --sub me --role manager)")
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    try:
        totals = run(args.file, args.url, args.token, args.rows, args.encoding, args.quiet)
    except (ImportFailed, OSError) as exc:
        print(f"\nimport failed: {exc}", file=sys.stderr)
        print("Rows acknowledged so far are recorded; run the same command again to finish.", file=sys.stderr)
        return 1
    print(json.dumps(totals, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
