#!/usr/bin/env python3
"""A stand-in for a ClickHouse server on another machine: answers portghost
ship's table check with the columns `portghost schema clickhouse` defines,
and acknowledges every insert after reading it whole, doing nothing else.
What the shipper alone can send. Usage: fleet_sink.py PORT SCHEMA_FILE"""
import http.server
import re
import sys

port, schema_file = int(sys.argv[1]), sys.argv[2]
columns = ""
for line in open(schema_file):
    m = re.match(r"^    (\w+) (\S+)", line)
    if m:
        columns += f"{m.group(1)}\t{m.group(2).rstrip(',')}\n"


class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, body: bytes):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.reply(b"Ok.\n")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        self.reply(columns.encode() if b"system.columns" in body else b"")

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port), Sink).serve_forever()
