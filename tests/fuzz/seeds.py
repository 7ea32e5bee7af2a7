#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus (tests/fuzz/corpus/). Run from anywhere."""
import os
import struct

here = os.path.dirname(os.path.abspath(__file__))


def out(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def sock(kind, how=2, proto=6, family=2, flags=1, cookie=4242, lport=40000, rport=443,
         laddr=b"\x7f\x00\x00\x01", raddr=b"\x0a\x00\x00\x05", comm=b"curl", pid=1234):
    return struct.pack("<BBBBHBBQQQIIIIIHHQ16s16s16s16s", kind, how, proto, family, flags, 0, 0,
                       1_000_000_000, cookie, 77, pid, pid, 1, 1000, 4026531840, lport, rport, 0,
                       laddr, raddr, comm, comm)


def task(kind, pid=1234, comm=b"curl"):
    return struct.pack("<B3xIQII16s", kind, pid, 999_000_000, 1, 1000, comm)


def exec_(pid=1234):
    exe = b"curl\0bin\0usr\0"
    args = b"curl\0-s\0https://example.com/\0"
    head = task(4, pid) + struct.pack("<HHHH", len(exe), len(args), 0, 0)
    return head + exe.ljust(512 + 256, b"\0") + args.ljust(4096, b"\0")


def frame(*recs):
    return b"".join(struct.pack("<H", len(r)) + r for r in recs)


out("fuzz_decode", "assign-release", frame(sock(1), sock(2, flags=0)))
out("fuzz_decode", "exec-then-assign", frame(exec_(), sock(1)))
out("fuzz_decode", "fork-exit", frame(task(5, 1235), task(6, 1235)))
out("fuzz_decode", "udp-v6-exhausted",
    frame(sock(1, how=4, proto=17, family=10, laddr=b"\0" * 15 + b"\1"), sock(7, how=1, lport=0)))

line = ('{"type":"assign","ts":"2026-11-22T00:35:25.000000001Z","ts_ns":1795307725000000001,"sock":7,'
        '"proto":"tcp","family":"ipv4","laddr":"10.0.0.5","lport":40000,"raddr":"10.1.2.3","rport":443,'
        '"how":"connect","ephemeral":true,"pid":1234,"tid":1234,"ppid":1,"uid":1000,"comm":"curl",'
        '"thread":"curl","exe":"/usr/bin/curl","cmdline":"curl -s https://example.com/","netns":4026531840,'
        '"cgroup_id":77,"container":null,"kernel":false,"host":"web-1"}\n')
release = ('{"type":"release","ts":"2026-11-22T00:35:25.5Z","ts_ns":1795307725500000000,"sock":7,"proto":"tcp",'
           '"family":"ipv4","laddr":"10.0.0.5","lport":40000,"raddr":"10.1.2.3","rport":443,'
           '"duration_ns":499999999,"pid":1234,"comm":"curl","timewait":true,"host":"web-1"}\n')
start = ('{"type":"start","ts":"2026-11-22T00:35:25Z","ts_ns":1795307725000000000,"version":"0.1.0",'
         '"kernel":"6.1.0","host":"web-1","machine_id":"m","boot_id":"b","hooks":[],"uncaught":[],'
         '"port_range":[32768,60999],"ring_buffer_bytes":8388608,"filters":{}}\n')
stop = ('{"type":"stop","ts":"2026-11-22T00:35:26Z","ts_ns":1795307726000000000,"reason":"signal",'
        '"records":{"assign":1,"release":1},"lost":0,"table_evicted":0,"host":"web-1"}\n')
out("fuzz_log_reader", "session", start + line + release + stop)
out("fuzz_log_reader", "truncated", start + line[:80])
out("fuzz_log_reader", "garbage-between", start + "\x00\xff not json\n" + line + "{}\n" + release)
life = line.replace('"type":"assign"', '"type":"life"').replace(
    ',"host":"web-1"}', ',"duration_ns":499999999,"timewait":true,"closer_pid":1234,"closer_tid":1234,'
    '"closer_comm":"curl","host":"web-1"}')
out("fuzz_log_reader", "life", start.replace('"version":"0.1.0",', '"version":"0.1.0","schema":2,') + life + stop)
out("fuzz_log_reader", "lost", start + '{"type":"lost","ts":"x","ts_ns":5,"count":3,"total":3,"reasons":{}}\n')

for name, text in [("rfc3339", "2026-11-22T10:03:12.123456789Z"), ("offset", "2026-11-22T10:03:12+02:00"),
                   ("clock", "10:03"), ("unix", "1795307725"), ("relative", "-5m"), ("range", "49152-65535"),
                   ("port", "443"), ("reversed", "9-1")]:
    out("fuzz_parsers", name, text)
