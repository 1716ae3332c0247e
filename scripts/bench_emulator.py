"""Benchmark: how many API requests per second the Stripe emulator serves on this machine.

Starts `python -m e2e.stripe_emulator` as its own process (as the app's run command does), then drives a
mix of typical calls (create customer, retrieve customer, list prices, retrieve subscription with
expansion) from concurrent keep-alive clients for a fixed time, and prints the figure.

    uv run python scripts/bench_emulator.py [--seconds 5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
HEADERS = {"Authorization": "Bearer sk_test_bench"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(base: str) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            try:
                if (await http.get(f"{base}/_emulator/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise SystemExit("emulator did not start")


async def setup(http: httpx.AsyncClient) -> tuple[str, str]:
    product = (await http.post("/v1/products", data={"name": "Bench"})).json()
    price = (
        await http.post(
            "/v1/prices",
            data={"product": product["id"], "unit_amount": "1000", "currency": "usd", "recurring[interval]": "month"},
        )
    ).json()
    customer = (await http.post("/v1/customers", data={"email": "bench@example.com"})).json()
    pm = (await http.post("/v1/payment_methods/pm_card_visa/attach", data={"customer": customer["id"]})).json()
    await http.post(f"/v1/customers/{customer['id']}", data={"invoice_settings[default_payment_method]": pm["id"]})
    sub = (
        await http.post("/v1/subscriptions", data={"customer": customer["id"], "items[0][price]": price["id"]})
    ).json()
    return customer["id"], sub["id"]


class RawConnection:
    """A minimal keep-alive HTTP/1.1 client: cheap enough that the emulator, not the client, is measured."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    async def request(self, method: str, path: str, body: str = "") -> int:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer sk_test_bench\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write((head + body).encode())
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])


async def worker(port: int, customer: str, sub: str, until: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = RawConnection(reader, writer, f"127.0.0.1:{port}")
    i = 0
    while time.monotonic() < until:
        kind = i % 4
        if kind == 0:
            status = await conn.request("POST", "/v1/customers", f"email=b{i}%40example.com&metadata[n]={i}")
        elif kind == 1:
            status = await conn.request("GET", f"/v1/customers/{customer}")
        elif kind == 2:
            status = await conn.request("GET", "/v1/prices?active=true&limit=10")
        else:
            status = await conn.request("GET", f"/v1/subscriptions/{sub}?expand[]=latest_invoice")
        if status != 200:
            raise SystemExit(f"unexpected HTTP {status}")
        counts[0] += 1
        i += 1
    writer.close()


async def run(seconds: float, concurrency: int) -> float:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(  # noqa: ASYNC220, S603 - our own entry point, started once before timing
        [sys.executable, "-m", "e2e.stripe_emulator", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await wait_ready(base)
        async with httpx.AsyncClient(base_url=base, headers=HEADERS, timeout=10) as http:
            customer, sub = await setup(http)
        counts = [0]
        started = time.monotonic()
        await asyncio.gather(*(worker(port, customer, sub, started + seconds, counts) for _ in range(concurrency)))
        elapsed = time.monotonic() - started
        return counts[0] / elapsed
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    rate = asyncio.run(run(args.seconds, args.concurrency))
    print(
        f"Stripe emulator: {rate:.0f} API requests/s ({args.concurrency} concurrent clients, "
        f"{args.seconds:.0f} s, mixed create/retrieve/list/expand)"
    )
    if rate < 500:
        raise SystemExit("below the 500 requests/s target")


if __name__ == "__main__":
    main()
