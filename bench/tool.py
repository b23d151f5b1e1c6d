#!/usr/bin/env python3
"""Helpers of bench/run.sh (Python 3 standard library only).

  tool.py codes SIM OUT --count N --prefix P [--pool K]
      mint N login codes from the simulator's control API (users P0, P1, ..., or P0..P(K-1) in
      turn with --pool) and write one login body {"code": ...} a line
  tool.py sessions SERVER SIM DIR --count N --prefix P
      log N new users in and write DIR/access.txt, DIR/refresh.txt (one token a line) and
      DIR/decrypt.txt ("<access token>\\t<decrypt body>", open data encrypted for that user)
  tool.py check URL EXPECTED [--bearer T] [--body JSON]
      one request; exit 1 unless it answers EXPECTED
  tool.py wait URL PID [--timeout S]
      until URL answers 200 (10 s at most unless S, and while PID lives)
  tool.py replay URL EXPECTED --lines FILE [--count N] [--mode get|post|bearer-post]
      N requests one after another on one keep-alive connection: GET with each line of FILE as
      the bearer token, POST each line as the JSON body, or POST lines "<token>\t<body>" (as
      sessions writes decrypt.txt) with the token as the bearer (lines taken in turn); exit 1 on
      any answer other than EXPECTED
  tool.py latency SIM MS simulated jscode2session latency (0: none)
  tool.py record RESULT SCENARIO REP RUNS
      append wrk's result with its scenario and repetition to RUNS; print a summary line
  tool.py meta OUT KEY=VALUE...   the run's description (numbers where they parse)
  tool.py rss PID        VmRSS of PID in kB
  tool.py report RESULTS_DIR OUT
      aggregate the runs into the markdown report
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import socket
import statistics
import sys
import threading
import time
import urllib.parse

APPID = "wx0000000000000001"


def split(url):
    u = urllib.parse.urlsplit(url)
    return u.hostname, u.port or 80


def pipeline(url, path, bodies):
    """POSTs each JSON body to path, pipelined on one connection (a thread writes while this one
    reads, so neither side's buffers can stall the other); returns (status, body) pairs."""
    host, port = split(url)
    out = []
    with socket.create_connection((host, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = b"".join(
            (
                f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(b)}\r\n\r\n"
            ).encode()
            + b
            for b in bodies
        )
        writer = threading.Thread(target=sock.sendall, args=(data,), daemon=True)
        writer.start()
        reader = sock.makefile("rb")
        for _ in bodies:
            status_line = reader.readline()
            if not status_line:
                raise RuntimeError(f"{url}{path}: connection closed after {len(out)} answers")
            status = int(status_line.split()[1])
            length = None
            while True:
                line = reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length is None:
                raise RuntimeError("response without Content-Length")
            out.append((status, reader.read(length)))
        writer.join()
    return out


def mint_codes(sim, users):
    bodies = [json.dumps({"appid": APPID, "user": u}).encode() for u in users]
    codes = []
    for status, body in pipeline(sim, "/__mock/login", bodies):
        if status != 200:
            raise RuntimeError(f"/__mock/login answered {status}: {body[:200]!r}")
        codes.append(json.loads(body)["code"])
    return codes


def cmd_codes(args):
    if args.pool:
        users = [f"{args.prefix}{i % args.pool}" for i in range(args.count)]
    else:
        users = [f"{args.prefix}{i}" for i in range(args.count)]
    codes = mint_codes(args.sim, users)
    with open(args.out, "w") as f:
        for code in codes:
            f.write(json.dumps({"code": code}) + "\n")


_local = threading.local()


def post_json(url, path, payload, bearer=None):
    host, port = split(url)
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    conn.request("POST", path, body=json.dumps(payload), headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def cmd_sessions(args):
    users = [f"{args.prefix}{i}" for i in range(args.count)]
    codes = mint_codes(args.sim, users)

    def login(code):
        status, body = post_json(args.server, "/v1/auth/wechat/login", {"code": code})
        if status != 200:
            raise RuntimeError(f"login answered {status}: {body[:200]!r}")
        answer = json.loads(body)
        return answer["access_token"], answer["refresh_token"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        tokens = list(pool.map(login, codes))
    encrypt = [
        json.dumps({"appid": APPID, "user": u, "data": {"nickName": f"bench {u}", "n": i}}).encode()
        for i, u in enumerate(users)
    ]
    sealed = []
    for status, body in pipeline(args.sim, "/__mock/encrypt", encrypt):
        if status != 200:
            raise RuntimeError(f"/__mock/encrypt answered {status}: {body[:200]!r}")
        answer = json.loads(body)
        sealed.append(json.dumps({"encrypted_data": answer["encrypted_data"], "iv": answer["iv"]}))
    os.makedirs(args.dir, exist_ok=True)
    with open(os.path.join(args.dir, "access.txt"), "w") as f:
        f.writelines(a + "\n" for a, _ in tokens)
    with open(os.path.join(args.dir, "refresh.txt"), "w") as f:
        f.writelines(r + "\n" for _, r in tokens)
    with open(os.path.join(args.dir, "decrypt.txt"), "w") as f:
        f.writelines(f"{a}\t{s}\n" for (a, _), s in zip(tokens, sealed))


def cmd_check(args):
    u = urllib.parse.urlsplit(args.url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=10)
    headers = {}
    if args.bearer:
        headers["Authorization"] = f"Bearer {args.bearer}"
    if args.body is not None:
        headers["Content-Type"] = "application/json"
        conn.request("POST", u.path, body=args.body, headers=headers)
    else:
        conn.request("GET", u.path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    if response.status != args.expected:
        print(f"{args.url}: {response.status} {body[:300]!r}", file=sys.stderr)
        sys.exit(1)


def cmd_wait(args):
    u = urllib.parse.urlsplit(args.url)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{args.pid}"):
            sys.exit(f"{args.url}: its process exited")
        try:
            conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=2)
            conn.request("GET", u.path or "/")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"{args.url} did not come up")


def cmd_replay(args):
    u = urllib.parse.urlsplit(args.url)
    with open(args.lines) as f:
        lines = [line.rstrip("\n") for line in f if line.strip()]
    count = args.count or len(lines)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=120)
    for i in range(count):
        line = lines[i % len(lines)]
        if args.mode == "get":
            conn.request("GET", u.path, headers={"Authorization": f"Bearer {line}"})
        elif args.mode == "bearer-post":
            token, _, body = line.partition("\t")
            conn.request(
                "POST",
                u.path,
                body=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
        else:
            conn.request("POST", u.path, body=line, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
        if response.status != args.expected:
            sys.exit(f"{args.url}: request {i} answered {response.status}: {body[:200]!r}")


def cmd_latency(args):
    host, port = split(args.sim)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    if args.ms == 0:
        conn.request("DELETE", "/__mock/faults")
    else:
        body = json.dumps({"api": "jscode2session", "latency_ms": args.ms})
        conn.request("POST", "/__mock/faults", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 204:
        sys.exit(f"/__mock/faults answered {response.status}: {response.read()[:200]!r}")


def cmd_record(args):
    with open(args.result) as f:
        result = json.loads(f.read())
    result["scenario"] = args.scenario
    result["rep"] = args.rep
    if args.rep != "warmup":
        result["rep"] = int(args.rep)
        with open(args.runs, "a") as f:
            f.write(json.dumps(result) + "\n")
    print(
        f"{args.rep} {args.scenario}: {result['requests']} requests, {result['rps']:.0f} req/s, "
        f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, non-2xx {result['non2xx']}",
        file=sys.stderr,
    )


def cmd_meta(args):
    meta = {"machine": {}}
    for pair in args.pairs:
        key, _, value = pair.partition("=")
        target = meta
        if key.startswith("machine."):
            target, key = meta["machine"], key[len("machine.") :]
        try:
            target[key] = int(value)
        except ValueError:
            target[key] = value
    with open(args.out, "w") as f:
        json.dump(meta, f, indent=1)


def cmd_rss(args):
    with open(f"/proc/{args.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                print(line.split()[1])
                return
    sys.exit("no VmRSS")


# ---------------------------------------------------------------------------------------------
# The report.

SCENARIOS = [
    ("S0", "hello (bench/hello, the ceiling)"),
    ("S1", "`GET /v1/me`"),
    ("S1b", "`GET /v1/auth/verify`"),
    ("S2-0-new", "login, WeChat 0 ms, new users"),
    ("S2-0-ret", "login, WeChat 0 ms, returning users"),
    ("S2-50-new", "login, WeChat 50 ms, new users"),
    ("S2-50-ret", "login, WeChat 50 ms, returning users"),
    ("S3", "`POST /v1/auth/refresh` (each token once)"),
    ("S4", "`GET /.well-known/jwks.json`"),
    ("S5", "`POST /v1/wechat/decrypt`"),
]


def span(values, fmt):
    if not values:
        return "–"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt(med)
    return f"{fmt(med)} ({fmt(min(values))}–{fmt(max(values))})"


def num(v):
    return f"{v:,.0f}"


def ms(v):
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def pct(v):
    return f"{100 * v:.1f}%"


def load_runs(results):
    runs = []
    with open(os.path.join(results, "runs.jsonl")) as f:
        for line in f:
            if line.strip():
                runs.append(json.loads(line))
    return runs


def failures(runs):
    """What makes the harness itself fail: a scenario run without a successful request."""
    bad = []
    for r in runs:
        ok = r["requests"] - r["non2xx"]
        if ok <= 0:
            bad.append(f"{r['scenario']} repetition {r['rep']}: no successful request")
        if r.get("bad_bodies"):
            bad.append(f"{r['scenario']} repetition {r['rep']}: {r['bad_bodies']} answers without a refresh token")
    return bad


def describe(meta):
    """The report's opening: how the numbers were taken."""
    out = []
    if meta.get("smoke") == 1:
        out.append(
            "**A smoke run** (`bench/run.sh --smoke`): it shows that the harness works; its numbers "
            "are not measurements."
        )
    out.append(
        "Written by `bench/run.sh` (see the command below; `bench/run.sh --smoke` is the short run "
        "CI makes). It builds the release binaries, then starts on one CPU the WeChat simulator "
        "(`wxlogin mock-wechat`), the ceiling `bench/hello` (axum, as wxlogin, answering 200 `hello`) "
        f"and `wxlogin serve --allow-mock` on {meta['machine'].get('database', 'SQLite')} with a fresh data directory, the default log "
        "level (`info`) and its standard output going to a file, the login and refresh rate limits "
        "off (all the load comes from one address); the load generator, wrk, runs on the "
        "other CPU with one thread and a fixed number of connections, each sending its next request "
        "when the previous one is answered (closed loop: latency is measured per request, from "
        "sending to the answer). Everything is on 127.0.0.1. Each run is bounded in time (wrk's "
        "`-d`) and in count (a cap on the requests a run may send, or the codes and refresh tokens "
        "it was given)."
    )
    out.append(
        "Scenarios: **S0** `GET /` of bench/hello. **S1** `GET /v1/me` and **S1b** "
        f"`GET /v1/auth/verify` with the access tokens of {meta['sessions']} users logged in just before "
        "each repetition, in turn. "
        "**S2** `POST /v1/auth/wechat/login`, each request with a fresh code minted from the "
        f"simulator before the run (at most {meta['codes_per_s_0ms']:,} per second of the run at 0 ms, "
        f"{meta['codes_per_s_50ms']:,} at 50 ms), "
        "with the simulator answering `jscode2session` at once or after 50 ms (`POST /__mock/faults`), "
        f"for users never seen (*new*: each login creates a user) or for {meta['returning']:,} users registered "
        "before the first run (*returning*, in turn). **S3** `POST /v1/auth/refresh`: it starts from "
        "the refresh tokens of those users and then sends each refresh token an answer hands "
        "out, so every refresh token is used exactly once. **S4** `GET /.well-known/jwks.json`. "
        "**S5** `POST /v1/wechat/decrypt` with open data the simulator encrypted for each of "
        "those users, with that user's token. The simulator runs on the server's CPU, so its share of "
        "the logins' cost counts against wxlogin. Before each pass, one request of S1, S1b, S4 and S5 "
        "is checked to answer 200."
    )
    out.append(
        "Throughput is the completed requests over the run's time; a *count-bound* run used up its "
        "codes or tokens or reached its cap before the time was up, and its time is until then. "
        "Non-2xx counts the answers with a status of 400 or more (as wrk counts them; none of these "
        "endpoints answers 1xx or 3xx); *errors* are wrk's connect, read, write errors and timeouts "
        "(5 s). RSS is wxlogin's VmRSS from `/proc` after start-up, before any request, and after "
        "the last run."
    )
    if meta.get("note"):
        out.append(f"**Note on this run:** {meta['note']}")
    return out


def cmd_report(args):
    runs = load_runs(args.results)
    with open(os.path.join(args.results, "meta.json")) as f:
        meta = json.load(f)
    s0 = {r["rep"]: r["rps"] for r in runs if r["scenario"] == "S0"}
    lines = []
    w = lines.append
    w("# Benchmarks")
    w("")
    for paragraph in describe(meta):
        w(paragraph)
        w("")
    w("## Results")
    w("")
    w(
        f"{meta['reps']} interleaved repetition(s) of every scenario, "
        + (f"after a warm-up pass of {meta['warmup']} s per scenario, " if meta["warmup"] else "without a warm-up, ")
        + f"{meta['connections']} connections, {meta['duration']} s per run (at most "
        f"{meta['cap_per_s']:,} requests per second of the run where no codes or tokens bound it). Each cell: median (min–max) over the repetitions. The ratio is "
        "each run's throughput over S0's in the same repetition."
    )
    w("")
    w("| scenario | | req/s | ratio to S0 | p50 ms | p99 ms | non-2xx | errors | count-bound runs |")
    w("|---|---|---|---|---|---|---|---|---|")
    for key, title in SCENARIOS:
        rs = [r for r in runs if r["scenario"] == key]
        if not rs:
            continue
        ratios = [r["rps"] / s0[r["rep"]] for r in rs if s0.get(r["rep"])]
        non2xx = sum(r["non2xx"] for r in rs)
        errors = sum(r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"] for r in rs)
        bound = sum(1 for r in rs if r.get("exhausted") or r.get("capped"))
        w(
            f"| {key} | {title} | {span([r['rps'] for r in rs], num)} | {span(ratios, pct)} | "
            f"{span([r['p50_ms'] for r in rs], ms)} | {span([r['p99_ms'] for r in rs], ms)} | "
            f"{non2xx} | {errors} | {bound} |"
        )
    w("")
    w(
        f"RSS of wxlogin (VmRSS): {meta['rss_before_kb'] / 1024:.1f} MB before the first run, "
        f"{meta['rss_after_kb'] / 1024:.1f} MB after the last."
    )
    w("")
    w("### Every run")
    w("")
    w(
        "*sent*: requests the script handed to wrk (completed, plus those in flight when the run "
        "ended, plus one wrk asks for before the run to check the script)."
    )
    w("")
    w("| repetition | scenario | requests | sent | seconds | req/s | p50 ms | p99 ms | max ms | non-2xx | bound |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    order = {k: i for i, (k, _) in enumerate(SCENARIOS)}
    for r in sorted(runs, key=lambda r: (r["rep"], order.get(r["scenario"], 99))):
        bound = "codes/tokens used up" if r.get("exhausted") else ("count cap" if r.get("capped") else "time")
        w(
            f"| {r['rep']} | {r['scenario']} | {r['requests']} | {r.get('sent', '–')} | {r['seconds']:.2f} | {num(r['rps'])} | "
            f"{ms(r['p50_ms'])} | {ms(r['p99_ms'])} | {ms(r['max_ms'])} | {r['non2xx']} | {bound} |"
        )
    w("")
    w("## Machine and versions")
    w("")
    for k, v in meta["machine"].items():
        w(f"- {k}: {v}")
    w("")
    w("## Command")
    w("")
    w("```sh")
    w(meta["command"])
    w("```")
    text = "\n".join(lines).rstrip() + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    bad = failures(runs)
    for b in bad:
        print(f"harness failure: {b}", file=sys.stderr)
    if bad:
        sys.exit(1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("codes")
    c.add_argument("sim")
    c.add_argument("out")
    c.add_argument("--count", type=int, required=True)
    c.add_argument("--prefix", required=True)
    c.add_argument("--pool", type=int, default=0)
    c.set_defaults(func=cmd_codes)
    s = sub.add_parser("sessions")
    s.add_argument("server")
    s.add_argument("sim")
    s.add_argument("dir")
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--prefix", required=True)
    s.set_defaults(func=cmd_sessions)
    k = sub.add_parser("check")
    k.add_argument("url")
    k.add_argument("expected", type=int)
    k.add_argument("--bearer")
    k.add_argument("--body")
    k.set_defaults(func=cmd_check)
    wt = sub.add_parser("wait")
    wt.add_argument("url")
    wt.add_argument("pid")
    wt.add_argument("--timeout", type=float, default=10)
    wt.set_defaults(func=cmd_wait)
    rr = sub.add_parser("replay")
    rr.add_argument("url")
    rr.add_argument("expected", type=int)
    rr.add_argument("--lines", required=True)
    rr.add_argument("--count", type=int, default=0)
    rr.add_argument("--mode", choices=["get", "post", "bearer-post"], default="get")
    rr.set_defaults(func=cmd_replay)
    lt = sub.add_parser("latency")
    lt.add_argument("sim")
    lt.add_argument("ms", type=int)
    lt.set_defaults(func=cmd_latency)
    rc = sub.add_parser("record")
    rc.add_argument("result")
    rc.add_argument("scenario")
    rc.add_argument("rep")
    rc.add_argument("runs")
    rc.set_defaults(func=cmd_record)
    mt = sub.add_parser("meta")
    mt.add_argument("out")
    mt.add_argument("pairs", nargs="*")
    mt.set_defaults(func=cmd_meta)
    r = sub.add_parser("rss")
    r.add_argument("pid")
    r.set_defaults(func=cmd_rss)
    rp = sub.add_parser("report")
    rp.add_argument("results")
    rp.add_argument("out")
    rp.set_defaults(func=cmd_report)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
