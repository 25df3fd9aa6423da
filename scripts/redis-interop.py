#!/usr/bin/env python3
"""Interop check: real Redis clients against a real local Meridian cluster.

Starts `meridian up` (3 regions, emulated WAN) in a temporary directory,
drives it with Debian's `redis-cli` and with redis-py (RESP2 and RESP3),
and stops the cluster by its pid whatever happens. Exits non-zero on the
first failed check, printing what was expected and what came back.

Usage: scripts/redis-interop.py [path/to/meridian]   (default: target/debug/meridian)
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXE = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "debug", "meridian")
REGIONS = ["us-east", "eu-west", "ap-south"]
CHECKS = 0


def check(what, got, want):
    global CHECKS
    CHECKS += 1
    if got != want:
        raise AssertionError(f"{what}: expected {want!r}, got {got!r}")


def eventually(what, f, limit=15.0):
    deadline = time.time() + limit
    last = None
    while time.time() < deadline:
        last = f()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {limit}s waiting for {what} (last: {last!r})")


def cli(addr, *args, stdin=None):
    host, port = addr.rsplit(":", 1)
    out = subprocess.run(
        ["redis-cli", "-h", host, "-p", port, *args],
        input=stdin, capture_output=True, timeout=30,
    )
    if out.returncode != 0:
        raise AssertionError(f"redis-cli {' '.join(args)} failed: {out.stderr!r}")
    return out.stdout.decode()


def start_cluster(directory):
    up = subprocess.Popen(
        [EXE, "up", "--regions", ",".join(REGIONS), "--dir", directory],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    path = os.path.join(directory, "cluster.json")
    deadline = time.time() + 60
    while not os.path.exists(path):
        if up.poll() is not None:
            raise SystemExit(f"meridian up exited: {up.stderr.read().decode()}")
        if time.time() > deadline:
            up.kill()
            raise SystemExit("meridian up did not come up in 60 s")
        time.sleep(0.05)
    time.sleep(0.1)  # the file is written whole, but be gentle
    with open(path) as f:
        return up, {r: e["resp"] for r, e in json.load(f)["regions"].items()}


def redis_cli_checks(addrs):
    us, eu, ap = (addrs[r] for r in REGIONS)
    check("PING", cli(us, "PING"), "PONG\n")
    check("SET", cli(us, "SET", "session:cli", "hello world"), "OK\n")
    eventually("the SET in eu-west", lambda: cli(eu, "GET", "session:cli") == "hello world\n")
    check("RESP3 HGETALL", (cli(us, "HSET", "h:cli", "a", "1"), cli(us, "-3", "HGETALL", "h:cli")), ("1\n", "a 1\n"))  # a map: one line per pair
    # --pipe sends raw RESP and finishes with an ECHO it checks itself.
    mass = "".join(f"SET pipe:{i} {i}\r\n" for i in range(1000)).encode()
    out = cli(us, "--pipe", stdin=mass)
    if "errors: 0, replies: 1000" not in out:
        raise AssertionError(f"redis-cli --pipe: {out!r}")
    keys = cli(us, "--scan", "--pattern", "pipe:*").split()
    check("--scan finds every piped key", len(set(keys)), 1000)
    eventually("the piped keys in ap-south", lambda: cli(ap, "GET", "pipe:999") == "999\n")
    info = cli(eu, "INFO", "replication")
    if "region:eu-west" not in info or "name=us-east,link=up" not in info:
        raise AssertionError(f"INFO replication: {info!r}")
    check("WAIT counts regions", cli(us, "WAIT", "2", "5000"), "2\n")
    check("unknown command", cli(us, "NOSUCH", "x"), "ERR unknown command 'NOSUCH', with args beginning with: 'x' \n\n")


def redis_py_checks(addrs):
    def conn(region, protocol=2):
        host, port = addrs[region].rsplit(":", 1)
        return redis.Redis(host=host, port=int(port), protocol=protocol, decode_responses=True, socket_timeout=20)

    us, eu, ap = conn("us-east"), conn("eu-west", protocol=3), conn("ap-south")
    check("ping", us.ping(), True)
    us.client_setname("interop")
    check("client name", us.client_getname(), "interop")
    check("set ex", us.set("session:py", "alice", ex=600), True)
    check("ttl", 590 <= us.ttl("session:py") <= 600, True)
    us.hset("user:py", mapping={"name": "Ada", "lang": "en"})
    us.sadd("basket:py", "apple", "pear")
    eventually("the hash in eu-west", lambda: eu.hgetall("user:py") == {"name": "Ada", "lang": "en"})
    check("RESP3 set reply", eu.smembers("basket:py"), {"apple", "pear"})
    check("RESP3 ttl", 590 <= eu.ttl("session:py") <= 600, True)
    try:
        us.incr("user:py")
        raise AssertionError("INCR on a hash must fail")
    except redis.exceptions.ResponseError as e:
        check("WRONGTYPE", str(e).startswith("WRONGTYPE"), True)

    # Pipelines: order kept, results in order.
    p = us.pipeline(transaction=False)
    for i in range(200):
        p.set(f"pp:{i}", i)
        p.incr(f"pp:{i}")
    results = p.execute()
    check("pipeline results", results[:4], [True, 1 + 0, True, 2])
    check("pipeline last", us.get("pp:199"), "200")
    check("scan_iter", len(set(us.scan_iter(match="pp:*", count=37))), 200)

    # Concurrent INCR in every region sums exactly.
    def hammer(r):
        c = conn(r)
        for _ in range(10):
            p = c.pipeline(transaction=False)
            for _ in range(20):
                p.incr("py:hits")
            p.execute()

    threads = [threading.Thread(target=hammer, args=(r,)) for r in REGIONS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in REGIONS:
        c = conn(r)
        eventually(f"every increment in {r}", lambda: c.get("py:hits") == "600")

    # A session moving between regions carries its token.
    us.set("session:move", "v1")
    token = us.execute_command("MERIDIAN.TOKEN")
    check("token names us-east", "us-east:" in token, True)
    check("after", ap.execute_command("MERIDIAN.AFTER", token, 5000), "OK")
    check("read after token", ap.get("session:move"), "v1")
    check("wait", us.execute_command("WAIT", 2, 5000), 2)


def main():
    with tempfile.TemporaryDirectory() as d:
        up, addrs = start_cluster(d)
        try:
            redis_cli_checks(addrs)
            redis_py_checks(addrs)
        finally:
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(timeout=20)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()
    print(f"redis interop: {CHECKS} checks passed (redis-cli {subprocess.run(['redis-cli', '--version'], capture_output=True).stdout.decode().split()[1]}, redis-py {redis.__version__})")


if __name__ == "__main__":
    main()
