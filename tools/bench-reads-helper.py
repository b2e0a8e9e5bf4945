#!/usr/bin/env python3
"""Helpers of tools/bench-reads (python3 standard library and tools/edgecache_kit.py).

    bench-reads-helper.py prepare DIR EDGECACHE           PKI (tenant bench), KEKs, the issuer's key, origin.yaml
    bench-reads-helper.py edge-config DIR ORIGIN_PEER_PORT   edge.yaml (accepts the issuer's tokens)
    bench-reads-helper.py gen N FILE                      N Observations (~2 KB each), one per line
    bench-reads-helper.py put BASE FILE CERT KEY CA [THREADS]   PUT each resource of FILE to BASE (origin /fhir)
    bench-reads-helper.py token DIR SCOPE SUB             an ES256 JWT from the issuer of DIR, valid 1 day
    bench-reads-helper.py port                            a free TCP port on 127.0.0.1
    bench-reads-helper.py json-field FILE FIELD           one top-level field of a JSON file
    bench-reads-helper.py wait-applied EDGE ORIGIN CERT KEY CA TIMEOUT   until the edge (link live) has applied the origin head_lsn
    bench-reads-helper.py wrk-parse FILE                  'RPS P50_MS P99_MS ERRORS' from wrk --latency output
    bench-reads-helper.py summary LABEL EDGE_WRK NGINX_WRK|- [STACK_WRK]   one summary line (- : nginx skipped)
    bench-reads-helper.py load URL N SECONDS CONNECTIONS TOKEN CA OUT   wrk's stand-in for smoke runs: random
                                                          keep-alive reads of obs-0..N-1, wrk-like output in OUT
"""

import http.client
import json
import os
import random
import re
import sys
import threading
import time

import edgecache_kit as kit

TENANT = "bench"
ISSUER = "https://idp.bench.example"
AUDIENCE = "https://edge.bench.example/fhir"


# MARK: The pair's files

def prepare(work, binary):
    kit.make_pair_files(work, binary, TENANT)
    kit.Issuer.create(work, ISSUER, AUDIENCE)
    kit.write_origin_config(work, "bench-origin", log_level="warning")


def issuer(work):
    return kit.Issuer(ISSUER, AUDIENCE, os.path.join(work, "idp.key"))


def edge_config(work, origin_peer_port):
    kit.write_edge_config(work, "bench-edge", TENANT, f"https://127.0.0.1:{origin_peer_port}", log_level="warning",
                          issuer=issuer(work))


# MARK: Resources

LOINC = [
    ("8867-4", "Heart rate", "beats/minute", "/min", 50, 120),
    ("8310-5", "Body temperature", "Cel", "Cel", 35, 40),
    ("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", "mg/dL", 60, 250),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", "mmol/L", 128, 150),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", "g/dL", 8, 18),
    ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", "%", 85, 100),
]


def observation(n):
    """A realistic vital-sign or lab Observation of about 2 KB, id obs-N (deterministic per N)."""
    rng = random.Random(n)
    code, display, unit, ucum, low, high = LOINC[n % len(LOINC)]
    patient = f"Patient/pat-{n % 5000}"
    value = round(rng.uniform(low, high), 1)
    day = 1 + n % 28
    when = f"2026-10-{day:02d}T{n % 24:02d}:{n % 60:02d}:{(n * 7) % 60:02d}+01:00"
    interp = "N" if (low + high) / 2 - (high - low) / 3 < value < (low + high) / 2 + (high - low) / 3 else ("H" if value > (low + high) / 2 else "L")
    resource = {
        "resourceType": "Observation",
        "id": f"obs-{n}",
        "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"], "source": "urn:oid:1.2.276.0.76.4.17#lab-1"},
        "identifier": [{"use": "official", "system": "urn:oid:1.2.276.0.76.4.17.9.1", "value": f"LAB-{2026000000 + n}"}],
        "basedOn": [{"reference": f"ServiceRequest/req-{n // 3}"}],
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                   "code": "vital-signs" if n % 2 == 0 else "laboratory",
                                   "display": "Vital Signs" if n % 2 == 0 else "Laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}], "text": display},
        "subject": {"reference": patient, "display": f"Patient {n % 5000}"},
        "encounter": {"reference": f"Encounter/enc-{n // 10}"},
        "effectiveDateTime": when,
        "issued": f"2026-10-{day:02d}T{(n % 24):02d}:{(n % 60):02d}:30.000+01:00",
        "performer": [{"reference": f"Practitioner/prac-{n % 200}", "display": "Dr. Example Performer"},
                      {"reference": "Organization/org-lab-1", "display": "Central Laboratory, St. Example Hospital"}],
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": ucum},
        "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                         "code": interp, "display": {"N": "Normal", "H": "High", "L": "Low"}[interp]}]}],
        "note": [{"authorString": "Nursing staff, ward 3B",
                  "text": "Measured at rest after 10 minutes supine. Patient reported no discomfort; repeat in 4 hours per "
                          "protocol. Device calibrated at the start of the shift; no artefacts noted during acquisition."}],
        "bodySite": {"coding": [{"system": "http://snomed.info/sct", "code": "368209003", "display": "Right upper arm"}]},
        "method": {"coding": [{"system": "http://snomed.info/sct", "code": "37931006", "display": "Auscultation"}]},
        "device": {"reference": f"Device/dev-{n % 50}", "display": "Bedside monitor, ward 3B"},
        "referenceRange": [{"low": {"value": low, "unit": unit, "system": "http://unitsofmeasure.org", "code": ucum},
                            "high": {"value": high, "unit": unit, "system": "http://unitsofmeasure.org", "code": ucum},
                            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/referencerange-meaning",
                                                 "code": "normal", "display": "Normal Range"}]},
                            "text": f"{low}-{high} {unit}"}],
        "derivedFrom": [{"reference": f"DocumentReference/doc-{n // 7}"}],
    }
    return json.dumps(resource, separators=(",", ":"))


def gen(count, path):
    with open(path, "w") as out:
        for n in range(count):
            out.write(observation(n) + "\n")


# MARK: Loading over HTTPS

def put(base, path, cert, key, ca, threads=8):
    """PUT every line of path to base/Type/id over keep-alive HTTPS with a client certificate."""
    with open(path) as f:
        lines = f.read().splitlines()
    address = kit.address(base)
    prefix = re.sub(r"https://[^/]+", "", base)
    client = kit.Client(kit.tls_context(ca, cert, key))
    lock = threading.Lock()
    state = {"next": 0, "errors": []}

    def worker():
        while True:
            with lock:
                index = state["next"]
                state["next"] += 1
            if index >= len(lines) or state["errors"]:
                break
            line = lines[index]
            resource = json.loads(line)
            url = f"{prefix}/{resource['resourceType']}/{resource['id']}"
            status, _, _ = client.request("PUT", address, url, body=line, timeout=60)
            if status not in (200, 201):
                with lock:
                    state["errors"].append(f"PUT {url}: {status}")
        client.close()

    start = time.monotonic()
    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if state["errors"]:
        sys.exit("put: " + "; ".join(state["errors"][:3]))
    seconds = time.monotonic() - start
    print(f"put: {len(lines)} resources in {seconds:.1f} s ({len(lines) / seconds:.0f} writes/s, {threads} connections)")


# MARK: Status

def wait_applied(edge, origin, cert, key, ca, timeout):
    client = kit.Client(kit.tls_context(ca, cert, key))
    try:
        status, seconds = kit.wait_applied(client, kit.address(edge), kit.address(origin), float(timeout))
    except RuntimeError as error:
        sys.exit(f"wait-applied: {error}")
    print(f"edge applied LSN {status['applied_lsn']} = origin head in {seconds:.1f} s")


# MARK: wrk output

def to_ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def wrk_parse(path):
    text = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, socket_errors.groups())) if socket_errors else 0)
    return rps, p50, p99, errors


def figure(rps, p50, p99, errors):
    text = f"{rps:,.0f} req/s p50 {p50:.2f} ms p99 {p99:.2f} ms"
    return text + (f" ({errors} errors)" if errors else "")


def cpu_per_request(path):
    """Server CPU microseconds per request, from PATH.cpu ('TICKS CLK_TCK', written by bench-reads)."""
    try:
        ticks, hz = map(int, open(path + ".cpu").read().split())
    except (OSError, ValueError):
        return None
    requests = int(re.search(r"(\d+) requests in", open(path).read()).group(1))
    return ticks / hz * 1e6 / requests


def summary(label, edge_file, nginx_file, stack_file=None):
    edge = wrk_parse(edge_file)
    if nginx_file == "-":
        line = f"{label}: edge {figure(*edge)} | nginx skipped (not installed)"
    else:
        nginx = wrk_parse(nginx_file)
        line = (f"{label}: edge {figure(*edge)} | nginx {figure(*nginx)} | "
                f"edge/nginx {edge[0] / nginx[0]:.2f}× throughput, p50 {edge[1] / nginx[1]:.2f}×, p99 {edge[2] / nginx[2]:.2f}×")
        edge_cpu, nginx_cpu = cpu_per_request(edge_file), cpu_per_request(nginx_file)
        if edge_cpu and nginx_cpu:
            line += f" | server CPU per read: edge {edge_cpu:.0f} µs, nginx {nginx_cpu:.0f} µs"
    if os.environ.get("BENCH_SMOKE") and errors_in(edge):
        # A smoke run's one check: every read of the edge answered 200.
        sys.exit(f"{line}\nbench-reads: the edge answered {edge[3]} reads with an error")
    if stack_file:
        # The floor of the edge's own HTTP stack: the same server stack answering a fixed body.
        stack = wrk_parse(stack_file)
        line += f" | stack floor {figure(*stack)}, edge/stack {edge[0] / stack[0]:.2f}×"
        stack_cpu = cpu_per_request(stack_file)
        if stack_cpu:
            line += f", stack CPU per read {stack_cpu:.0f} µs"
    print(line)


def errors_in(parsed):
    return parsed[3] > 0


def load(url, n, seconds, connections, token, ca, out):
    """Random keep-alive reads for SECONDS on CONNECTIONS threads; wrk-like lines in OUT (smoke runs only:
    one Python process is no load generator to quote, it only shows that the read path answers)."""
    address = kit.address(url)
    client = kit.Client(kit.tls_context(ca, check_hostname=False))
    latencies, failures, lock = [], [0], threading.Lock()
    deadline = time.monotonic() + float(seconds)

    def worker():
        mine, bad = [], 0
        while time.monotonic() < deadline:
            start = time.monotonic()
            try:
                status, _, _ = client.request(
                    "GET", address, f"/fhir/Observation/obs-{random.randrange(int(n))}",
                    headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}, timeout=10)
                if status != 200:
                    bad += 1
            except (OSError, http.client.HTTPException):
                bad += 1  # the client drops the connection; the next request opens a new one
            mine.append((time.monotonic() - start) * 1000)
        client.close()
        with lock:
            latencies.extend(mine)
            failures[0] += bad

    threads = [threading.Thread(target=worker) for _ in range(int(connections))]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    latencies.sort()
    count = len(latencies)
    if count == 0:
        sys.exit("load: no request completed")
    with open(out, "w") as f:
        f.write(f"Latency Distribution\n     50%    {latencies[count // 2]:.3f}ms\n     99%    {latencies[min(count - 1, count * 99 // 100)]:.3f}ms\n")
        f.write(f"  {count} requests in {elapsed:.2f}s\n")
        if failures[0]:
            f.write(f"  Non-2xx or 3xx responses: {failures[0]}\n")
        f.write(f"Requests/sec: {count / elapsed:.2f}\n")


def main(argv):
    command = argv[1] if len(argv) > 1 else ""
    if command == "prepare":
        prepare(argv[2], argv[3])
    elif command == "edge-config":
        edge_config(argv[2], argv[3])
    elif command == "gen":
        gen(int(argv[2]), argv[3])
    elif command == "put":
        put(argv[2], argv[3], argv[4], argv[5], argv[6], int(argv[7]) if len(argv) > 7 else 8)
    elif command == "token":
        print(issuer(argv[2]).token(argv[3], argv[4], lifetime_s=86400))
    elif command == "port":
        print(kit.free_port())
    elif command == "json-field":
        print(json.load(open(argv[2]))[argv[3]])
    elif command == "wait-applied":
        wait_applied(*argv[2:8])
    elif command == "wrk-parse":
        print(" ".join(str(v) for v in wrk_parse(argv[2])))
    elif command == "load":
        load(*argv[2:9])
    elif command == "summary":
        summary(argv[2], argv[3], argv[4], argv[5] if len(argv) > 5 else None)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except RuntimeError as error:  # a command that failed (gen-certs.sh, keys init, openssl)
        sys.exit(f"bench-reads-helper: {error}")
