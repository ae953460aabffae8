#!/usr/bin/env python3
"""test/chaos/s3proxy.py — a TCP proxy on 127.0.0.1 in front of an S3 gateway, for scripts/chaos.

    s3proxy.py --control FILE --port-file FILE

Forwards every connection byte for byte to the upstream (SigV4 signs the Host header, so the
client talks to the proxy's address and the gateway checks the signature on what it receives:
nothing is rewritten). The control file is JSON, re-read when its mtime changes (polled every
50 ms):

    {"upstream": "127.0.0.1:PORT", "mode": "pass" | "500" | "hang", "latency_ms": N}

latency_ms (default 0) delays each chunk the client sends on its way to the gateway: a slow link,
so that a backup's few S3 requests span long enough for a fault to land among them.

  pass  forward (a failed connect to the upstream closes the client's connection: a dead gateway)
  500   answer each new request "500 InternalError" (S3's XML error) and close
  hang  accept, read and discard, never answer, until the mode changes
Any change of mode closes every open connection, so that keep-alive connections made before a
fault do not escape it, and hung connections end when the hang does. Counts of connections by
mode go to stderr. Stops on SIGTERM.
"""
import argparse
import asyncio
import json
import os
import signal
import sys

ERR_BODY = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
            b'<Message>injected by the chaos proxy</Message></Error>')
ERR_500 = (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\n"
           b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(ERR_BODY)) + ERR_BODY
HEAD_CAP = 65536


class Proxy:
    def __init__(self, control):
        self.control = control
        self.mtime = None
        self.mode = "pass"
        self.upstream = None
        self.latency = 0.0
        self.conns = set()  # writers of open client connections
        self.counts = {}

    def load(self):
        try:
            st = os.stat(self.control)
        except FileNotFoundError:
            return
        if st.st_mtime_ns == self.mtime:
            return
        self.mtime = st.st_mtime_ns
        try:
            with open(self.control) as f:
                c = json.load(f)
        except (OSError, ValueError) as e:
            print("s3proxy: control file unreadable: %s" % e, file=sys.stderr, flush=True)
            return
        mode = c.get("mode", "pass")
        if mode not in ("pass", "500", "hang"):
            print("s3proxy: unknown mode %r ignored" % mode, file=sys.stderr, flush=True)
            mode = self.mode
        changed = mode != self.mode
        self.mode, self.upstream = mode, c.get("upstream", self.upstream)
        self.latency = max(0, int(c.get("latency_ms", 0))) / 1000.0
        print("s3proxy: mode %s upstream %s counts %s" % (self.mode, self.upstream, self.counts),
              file=sys.stderr, flush=True)
        if changed:
            for w in list(self.conns):
                w.transport.abort()
            self.conns.clear()

    async def poll(self):
        while True:
            self.load()
            await asyncio.sleep(0.05)

    async def handle(self, reader, writer):
        mode = self.mode
        self.counts[mode] = self.counts.get(mode, 0) + 1
        self.conns.add(writer)
        try:
            if mode == "pass":
                await self.forward(reader, writer)
            elif mode == "500":
                await self.answer_500(reader, writer)
            else:
                while await reader.read(65536):
                    pass
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self.conns.discard(writer)
            writer.transport.abort()

    async def answer_500(self, reader, writer):
        buf = b""
        while True:  # one request head per connection: the answer closes it
            chunk = await asyncio.wait_for(reader.read(65536), 30)
            if not chunk:
                return
            buf += chunk
            if b"\r\n\r\n" in buf or len(buf) > HEAD_CAP:
                break
        writer.write(ERR_500)
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        try:  # drain what the client still sends (a body), so the close is no reset
            async with asyncio.timeout(2):
                while await reader.read(65536):
                    pass
        except TimeoutError:
            pass

    async def forward(self, creader, cwriter):
        if not self.upstream:
            return
        host, port = self.upstream.rsplit(":", 1)
        try:
            ureader, uwriter = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 5)
        except (OSError, TimeoutError):
            return
        self.conns.add(uwriter)

        async def pipe(r, w, slow):
            try:
                while True:
                    data = await r.read(65536)
                    if not data:
                        break
                    if slow and self.latency:
                        await asyncio.sleep(self.latency)
                    w.write(data)
                    await w.drain()
            except OSError:
                pass
            finally:
                if w.can_write_eof() and not w.transport.is_closing():
                    try:
                        w.write_eof()
                    except OSError:
                        pass

        try:
            a = asyncio.ensure_future(pipe(creader, uwriter, True))
            b = asyncio.ensure_future(pipe(ureader, cwriter, False))
            # the gateway's side ending ends the connection (a killed gateway: the client sees it)
            await b
            a.cancel()
        finally:
            self.conns.discard(uwriter)
            uwriter.transport.abort()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--control", required=True)
    ap.add_argument("--port-file", required=True)
    args = ap.parse_args()
    p = Proxy(args.control)
    p.load()
    server = await asyncio.start_server(p.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, args.port_file)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    poller = asyncio.ensure_future(p.poll())
    await stop.wait()
    poller.cancel()
    print("s3proxy: stopping; connections by mode %s" % p.counts, file=sys.stderr, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
