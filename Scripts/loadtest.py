#!/usr/bin/env python3
"""Scale-out, fault and overload harness for `universeg-worker serve` on a real Tansu broker.

    source Scripts/lib/kafka-runtime.sh && ensure_kafka_runtime
    python3 Scripts/loadtest.py scale    [--requests 2000] [--throughput-requests 300]
    python3 Scripts/loadtest.py overload [--factor 10] [--support-size 32] [--ensemble 2] [--threads T]
                                         [--worker-cpus LIST --aux-cpus LIST]

scale:    throughput with 1, 2 and 3 workers (one consumer group, 6 request partitions), then the
          chaos run: 3 workers, --requests requests; during the run SIGKILL one worker and restart
          it, SIGTERM another and restart it, add a fourth and remove it (SIGTERM). From the
          results topic: every request_id answered, lost (must be 0), duplicates and whether each
          duplicate's mask equals the first, p50/p99 latency, peak RSS per worker.
overload: one worker; measures its rate on a calibration batch, then queues --factor times what it
          handles in a minute and checks: peak RSS, partitions paused and resumed (from its log and
          /metrics), no eviction from the group (no revocation), throughput against `bench` for
          the same N, K and threads (one forward pass per K at support size N, plus per-request
          I/O; `bench` runs before and after the load, the mean of the two medians is used).
          It also reports the CPU seconds the worker, the broker and this harness used during the
          load. --worker-cpus pins the worker and `bench` to those CPUs (e.g. "1"), --aux-cpus
          pins the broker and the harness (e.g. "0"), so that on a small machine the worker's
          cores are not shared with the load generator, as with a broker on other machines.

Needs: the release build (.build/release/universeg-worker, built with Scripts/test or Scripts/demo),
confluent-kafka and the Tansu binary ($UNIVERSEG_TANSU_BIN), both from Scripts/lib/kafka-runtime.sh.
Prints a report and writes it as JSON (--out). Uses real wbc-cv images when ../shared/datasets is
present (through `universeg-worker sample`), synthetic ones otherwise.
"""
import argparse
import base64
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, ".build", "release", "universeg-worker")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Broker:
    def __init__(self, workdir):
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        url = f"tcp://{self.bootstrap}"
        self.log = open(os.path.join(workdir, "tansu.log"), "w")
        self.proc = subprocess.Popen([os.environ["UNIVERSEG_TANSU_BIN"], "broker", "--listener-url", url,
                                      "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                                     stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        self.admin = AdminClient({"bootstrap.servers": self.bootstrap})
        deadline = time.time() + 30
        while True:
            try:
                self.admin.list_topics(timeout=2)
                return
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.3)

    def create(self, topics):
        for name, future in self.admin.create_topics([NewTopic(t, p, 1) for t, p in topics]).items():
            future.result(30)
        # Wait until the metadata shows them.
        deadline = time.time() + 30
        while time.time() < deadline:
            md = self.admin.list_topics(timeout=5)
            if all(t in md.topics and len(md.topics[t].partitions) == p for t, p in topics):
                return
            time.sleep(0.2)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Worker:
    """One `serve` process with its own config file, metrics port and log file."""
    count = 0

    def __init__(self, env, broker, group, topics, store, workdir, threads=1, max_in_flight=1, extra_props=None,
                 cpus=None):
        Worker.count += 1
        self.cpus = cpus
        self.name = f"w{Worker.count}"
        self.metrics_port = free_port()
        self.log_path = os.path.join(workdir, f"{self.name}.log")
        props = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500", "auto.commit.interval.ms": "500",
                 "statistics.interval.ms": "1000"}
        props.update(extra_props or {})
        cfg = {"kafka": {"properties": props, "requests_topic": topics[0], "results_topic": topics[1],
                         "metrics_topic": topics[2], "dlq_topic": topics[3]},
               "inference": {"threads": threads, "max_in_flight": max_in_flight, "drain_timeout_s": 30},
               "metrics": {"address": f"127.0.0.1:{self.metrics_port}", "interval_s": 5}}
        self.config_path = os.path.join(workdir, f"{self.name}.json")
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)
        self.args = [BIN, "serve", "--config", self.config_path, "--brokers", broker.bootstrap, "--group", group,
                     "--store", "file://" + store]
        self.env = env
        self.peak_rss = 0
        self.start()

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=self.log, env=self.env,
                                     preexec_fn=pin(self.cpus))
        self.started = time.time()

    def ready(self):
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=1).status == 200
        except Exception:
            return False

    def wait_ready(self, timeout=120):
        deadline = time.time() + timeout
        while not self.ready():
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"{self.name} did not become ready; see {self.log_path}")
            time.sleep(0.2)

    def metrics(self):
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).read().decode()
        except Exception:
            return ""

    def sample_rss(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        self.peak_rss = max(self.peak_rss, int(line.split()[1]) * 1024)
        except OSError:
            pass

    def kill(self):
        self.sample_rss()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout=60):
        self.sample_rss()
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()


def parse_cpus(text):
    """"0,2-3" -> {0, 2, 3}; None or "" -> None (no pinning)."""
    if not text:
        return None
    cpus = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def pin(cpus):
    """A preexec_fn that pins the child (and every thread it starts) to `cpus`; None: no pinning."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def cpu_seconds(pid):
    """User + system CPU seconds of a process (all its threads) so far, from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    t = os.times()
    return t.user + t.system


def sample_images(workdir, queries):
    """A support set (store layout) and query PNGs: wbc-cv nucleus when present, synthetic otherwise."""
    out = os.path.join(workdir, "sample")
    datasets = os.environ.get("UNIVERSEG_DATASETS", os.path.join(ROOT, "..", "shared", "datasets"))
    text = subprocess.run([BIN, "sample", "--out", out, "--datasets", datasets, "--label", "nucleus",
                           "--support", "64", "--queries", str(queries)], check=True, capture_output=True, text=True).stdout
    store = os.path.join(workdir, "store")
    os.makedirs(os.path.join(store, "set"), exist_ok=True)
    os.rename(os.path.join(out, "support"), os.path.join(store, "set", "1"))
    with open(os.path.join(store, "set", "LATEST"), "w") as f:
        f.write("1\n")
    qdir = os.path.join(out, "queries")
    images = []
    for name in sorted(os.listdir(qdir)):
        with open(os.path.join(qdir, name), "rb") as f:
            images.append(base64.b64encode(f.read()).decode())
    return store, images, text.strip().splitlines()[0] if text.strip() else ""


def produce(bootstrap, topic, ids, images, options):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    for i, rid in enumerate(ids):
        value = json.dumps({"request_id": rid, "support_set": {"id": "set"}, "image": {"png_base64": images[i % len(images)]},
                            "options": options})
        while True:
            try:
                p.produce(topic, key=rid, value=value)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(60) == 0, "requests not acknowledged"


class ResultReader(threading.Thread):
    """Collects every record of the results topic: request_id -> [(status, mask, total_ms, worker)]."""

    def __init__(self, bootstrap, topic):
        super().__init__(daemon=True)
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.time_ns()}",
                           "auto.offset.reset": "earliest", "enable.auto.commit": False})
        self.assigned = threading.Event()
        self.c.subscribe([topic], on_assign=lambda c, parts: self.assigned.set())
        self.results = {}
        self.lock = threading.Lock()
        self.stopped = False
        self.first = None
        self.last = None

    def run(self):
        while not self.stopped:
            m = self.c.poll(0.2)
            if m is None or m.error():
                continue
            r = json.loads(m.value())
            # When the worker produced it (CreateTime), not when this reader got it.
            kind, ts = m.timestamp()
            now = ts / 1000 if ts and ts > 0 else time.time()
            with self.lock:
                self.first = self.first or now
                self.last = now
                mask = (r.get("mask") or {}).get("png_base64")
                self.results.setdefault(r["request_id"], []).append(
                    (r["status"], mask, (r.get("timings_ms") or {}).get("total"), r.get("worker")))
        self.c.close()

    def start_and_wait(self):
        self.start()
        if not self.assigned.wait(120):
            raise SystemExit("the results reader got no partitions")

    def answered(self):
        with self.lock:
            return len(self.results)

    def wait_for(self, n, timeout):
        deadline = time.time() + timeout
        while self.answered() < n and time.time() < deadline:
            time.sleep(0.2)
        return self.answered() >= n


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def worker_env():
    env = dict(os.environ)
    if not os.path.exists(BIN):
        raise SystemExit(f"{BIN} is missing: run Scripts/test or `swift build -c release -Xswiftc -enable-testing` first")
    return env


def scale(args):
    work = tempfile.mkdtemp(prefix="universeg-scale-")
    env = worker_env()
    broker = Broker(work)
    store, images, sample_note = sample_images(work, 16)
    options = {"support_size": args.support_size, "ensemble": 1}
    report = {"command": " ".join(sys.argv), "sample": sample_note, "options": options, "throughput": []}
    try:
        # 1. Throughput per worker count.
        for n in (1, 2, 3):
            topics = [f"tp{n}.requests", f"tp{n}.results", f"tp{n}.metrics", f"tp{n}.dlq"]
            broker.create([(topics[0], 6)] + [(t, 1) for t in topics[1:]])
            workers = [Worker(env, broker, f"tp{n}", topics, store, work) for _ in range(n)]
            for w in workers:
                w.wait_ready()
            time.sleep(8)  # the group settles: every partition assigned
            reader = ResultReader(broker.bootstrap, topics[1])
            reader.start_and_wait()
            ids = [f"tp{n}-{i}" for i in range(args.throughput_requests)]
            t0 = time.time()
            produce(broker.bootstrap, topics[0], ids, images, options)
            ok = reader.wait_for(len(ids), 600)
            elapsed = (reader.last or time.time()) - t0
            reader.stopped = True
            for w in workers:
                w.terminate()
            report["throughput"].append({"workers": n, "requests": len(ids), "complete": ok,
                                         "seconds": round(elapsed, 2), "requests_per_s": round(len(ids) / elapsed, 1)})
            print(f"throughput: {n} worker(s): {len(ids)} requests in {elapsed:.1f} s = {len(ids) / elapsed:.1f} req/s", flush=True)

        # 2. Chaos run.
        topics = ["chaos.requests", "chaos.results", "chaos.metrics", "chaos.dlq"]
        broker.create([(topics[0], 6)] + [(t, 1) for t in topics[1:]])
        ids = [f"chaos-{i}" for i in range(args.requests)]
        produce(broker.bootstrap, topics[0], ids, images, options)
        reader = ResultReader(broker.bootstrap, topics[1])
        reader.start_and_wait()
        workers = [Worker(env, broker, "chaos", topics, store, work) for _ in range(3)]
        t0 = time.time()
        events = []
        total = len(ids)
        plan = [(0.15, "SIGKILL w1, restart"), (0.35, "SIGTERM w2, restart"), (0.55, "add w4"), (0.75, "SIGTERM w4 (remove)")]
        extra = None
        for fraction, what in plan:
            while reader.answered() < fraction * total and time.time() - t0 < 900:
                for w in workers + ([extra] if extra else []):
                    w.sample_rss()
                time.sleep(0.1)
            at = round(time.time() - t0, 1)
            if what.startswith("SIGKILL"):
                workers[0].kill()
                workers[0].start()
            elif what.startswith("SIGTERM w2"):
                status = workers[1].terminate()
                events.append({"at_s": at, "event": f"w2 exited {status} after SIGTERM"})
                workers[1].start()
            elif what.startswith("add"):
                extra = Worker(env, broker, "chaos", topics, store, work)
                extra.wait_ready()
            else:
                status = extra.terminate()
                events.append({"at_s": at, "event": f"w4 exited {status} after SIGTERM"})
            events.append({"at_s": at, "answered": reader.answered(), "event": what})
            print(f"chaos: t={at}s answered={reader.answered()}: {what}", flush=True)
        complete = reader.wait_for(total, 900)
        elapsed = (reader.last or time.time()) - t0
        time.sleep(5)  # late duplicates
        reader.stopped = True
        for w in workers:
            w.sample_rss()
            w.terminate()
        with reader.lock:
            results = dict(reader.results)
        lost = [i for i in ids if i not in results]
        duplicates = {i: r for i, r in results.items() if len(r) > 1}
        identical = all(len({x[1] for x in r}) == 1 for r in duplicates.values())
        statuses = {}
        for r in results.values():
            statuses[r[0][0]] = statuses.get(r[0][0], 0) + 1
        latencies = [x[2] for r in results.values() for x in r if x[2] is not None]
        logs = "".join(w.read_log() for w in workers + [extra])
        report["chaos"] = {
            "requests": total, "answered": len(results), "lost": len(lost), "statuses": statuses,
            "duplicates": len(duplicates), "duplicate_records": sum(len(r) - 1 for r in duplicates.values()),
            "duplicates_identical": identical, "seconds": round(elapsed, 1),
            "requests_per_s": round(total / elapsed, 1), "complete": complete,
            "latency_ms_p50": round(percentile(latencies, 50), 1), "latency_ms_p99": round(percentile(latencies, 99), 1),
            "peak_rss_mib": round(max(w.peak_rss for w in workers + [extra]) / 2**20, 1),
            "kills": 1, "sigterms": 2, "revocations_logged": logs.count("partitions revoked"), "events": events,
        }
        print(json.dumps(report["chaos"], indent=1), flush=True)
    finally:
        broker.stop()
    return report


def run_bench(args, threads, cpus=None):
    """Median ms of one forward pass of the shipped weights at support size N (`bench`)."""
    out = subprocess.run([BIN, "bench", "--weights", os.path.join(ROOT, "Config/models/universeg-cpu.safetensors"),
                          "--sizes", str(args.support_size), "--threads", str(threads), "--repeats", "20", "--json"],
                         check=True, capture_output=True, text=True, preexec_fn=pin(cpus)).stdout.strip().splitlines()[-1]
    return json.loads(out)["median_ms"]


def overload(args):
    work = tempfile.mkdtemp(prefix="universeg-overload-")
    env = worker_env()
    worker_cpus, aux_cpus = parse_cpus(args.worker_cpus), parse_cpus(args.aux_cpus)
    if aux_cpus:
        os.sched_setaffinity(0, aux_cpus)   # this harness, and the broker it starts, run there
    broker = Broker(work)
    store, images, sample_note = sample_images(work, 16)
    options = {"support_size": args.support_size, "ensemble": args.ensemble}
    topics = ["ol.requests", "ol.results", "ol.metrics", "ol.dlq"]
    broker.create([(topics[0], 2)] + [(t, 1) for t in topics[1:]])
    report = {"command": " ".join(sys.argv), "sample": sample_note, "options": options}
    try:
        cores = args.threads or (len(worker_cpus) if worker_cpus else os.cpu_count() or 2)
        bench_before = run_bench(args, cores, worker_cpus)
        w = Worker(env, broker, "ol", topics, store, work, threads=cores,
                   extra_props={"max.poll.interval.ms": "30000", "session.timeout.ms": "10000"}, cpus=worker_cpus)
        w.wait_ready()
        time.sleep(6)
        reader = ResultReader(broker.bootstrap, topics[1])
        reader.start_and_wait()
        # Calibration: the worker's rate on a small batch.
        calib = [f"cal-{i}" for i in range(args.calibration)]
        t0 = time.time()
        produce(broker.bootstrap, topics[0], calib, images, options)
        reader.wait_for(len(calib), 600)
        rate = len(calib) / (reader.last - t0)
        n = int(round(rate * 60 * args.factor))
        print(f"overload: calibration {rate:.2f} req/s -> queueing {n} requests ({args.factor}x a minute)", flush=True)
        ids = [f"ol-{i}" for i in range(n)]
        cpu0 = {"worker": cpu_seconds(w.proc.pid), "broker": cpu_seconds(broker.proc.pid), "harness": own_cpu_seconds()}
        t1 = time.time()
        produce(broker.bootstrap, topics[0], ids, images, options)
        print(f"overload: {n} requests queued in {time.time() - t1:.1f} s", flush=True)
        paused_seen = 0
        rss = []
        deadline = time.time() + 60 * args.factor * 3
        while reader.answered() < len(calib) + n and time.time() < deadline and w.proc.poll() is None:
            text = w.metrics()
            m = re.search(r"^universeg_paused_partitions (\d+)", text, re.M)
            if m:
                paused_seen = max(paused_seen, int(m.group(1)))
            r = re.search(r"^process_resident_memory_bytes (\d+)", text, re.M)
            if r:
                rss.append(int(r.group(1)))
            w.sample_rss()
            time.sleep(1)
        elapsed = reader.last - t1
        wall = time.time() - t1
        cpu1 = {"worker": cpu_seconds(w.proc.pid), "broker": cpu_seconds(broker.proc.pid), "harness": own_cpu_seconds()}
        cpu_used = {k: round(cpu1[k] - cpu0[k], 1) for k in cpu0 if cpu0[k] is not None and cpu1[k] is not None}
        reader.stopped = True
        final = w.metrics()
        status = w.terminate()
        log = w.read_log()
        done = reader.answered() - len(calib)
        # bench: the same N and K (and threads) through the engine alone, before and after the run.
        bench_after = run_bench(args, cores, worker_cpus)
        bench_ms = (bench_before + bench_after) / 2
        bench_rate = 1000.0 / (bench_ms * args.ensemble)
        throughput = done / elapsed
        report.update({
            "calibration_rate": round(rate, 2), "queued": n, "processed": done, "seconds": round(elapsed, 1),
            "threads": cores, "throughput_per_s": round(throughput, 2),
            "bench_ms_per_forward": round(bench_ms, 2), "bench_ms_before_after": [bench_before, bench_after],
            "bench_rate_per_s": round(bench_rate, 2), "throughput_vs_bench": round(throughput / bench_rate, 3),
            "peak_rss_mib": round(w.peak_rss / 2**20, 1), "max_rss_sample_mib": round(max(rss) / 2**20, 1) if rss else None,
            "max_paused_partitions": paused_seen, "paused_final": re.search(r"^universeg_paused_partitions (\d+)", final, re.M).group(1),
            "pause_log_lines": log.count("partitions paused"), "resume_log_lines": log.count("partitions resumed"),
            "revocations": log.count("partitions revoked"), "exit_status": status,
            "worker_cpus": sorted(worker_cpus) if worker_cpus else "all", "aux_cpus": sorted(aux_cpus) if aux_cpus else "all",
            "cpu_seconds": cpu_used, "cpu_wall_s": round(wall, 1),
            "cpu_share_of_machine": {k: round(v / (wall * (os.cpu_count() or 1)), 3) for k, v in cpu_used.items()},
        })
        print(json.dumps(report, indent=1), flush=True)
    finally:
        broker.stop()
    return report


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("scale")
    s.add_argument("--requests", type=int, default=2000)
    s.add_argument("--throughput-requests", type=int, default=300)
    s.add_argument("--support-size", type=int, default=8)
    s.add_argument("--out")
    o = sub.add_parser("overload")
    o.add_argument("--factor", type=float, default=10)
    o.add_argument("--support-size", type=int, default=32)
    o.add_argument("--ensemble", type=int, default=2)
    o.add_argument("--calibration", type=int, default=20)
    o.add_argument("--threads", type=int, default=0, help="inference.threads of the worker and bench (default: all cores)")
    o.add_argument("--worker-cpus", help="pin the worker and bench to these CPUs, e.g. 1 or 2-3 (default: no pinning)")
    o.add_argument("--aux-cpus", help="pin the broker and this harness to these CPUs, e.g. 0 (default: no pinning)")
    o.add_argument("--out")
    args = ap.parse_args()
    report = scale(args) if args.mode == "scale" else overload(args)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
