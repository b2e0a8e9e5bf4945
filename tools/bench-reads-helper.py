#!/usr/bin/env python3
"""Helpers of tools/bench-reads (python3 standard library only).

    bench-reads-helper.py gen N FILE                      N Observations (~2 KB each), one per line
    bench-reads-helper.py put BASE FILE CERT KEY CA [THREADS]   PUT each resource of FILE to BASE (origin /fhir)
    bench-reads-helper.py token KEY ISS AUD SCOPE SUB     an ES256 JWT signed with KEY (openssl CLI), valid 1 day
    bench-reads-helper.py port                            a free TCP port on 127.0.0.1
    bench-reads-helper.py json-field FILE FIELD           one top-level field of a JSON file
    bench-reads-helper.py wait-applied EDGE ORIGIN CERT KEY CA TIMEOUT   until edge applied_lsn == origin head_lsn
    bench-reads-helper.py wrk-parse FILE                  'RPS P50_MS P99_MS ERRORS' from wrk --latency output
    bench-reads-helper.py summary LABEL EDGE_WRK NGINX_WRK|- [STACK_WRK]   one summary line (- : nginx skipped)
    bench-reads-helper.py load URL N SECONDS CONNECTIONS TOKEN CA OUT   wrk's stand-in for smoke runs: random
                                                          keep-alive reads of obs-0..N-1, wrk-like output in OUT
"""

import base64
import http.client
import json
import os
import random
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

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

def tls_context(cert, key, ca):
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    return context


def put(base, path, cert, key, ca, threads=8):
    """PUT every line of path to base/Type/id over keep-alive HTTPS with a client certificate."""
    with open(path) as f:
        lines = f.read().splitlines()
    host, port = re.match(r"https://([^:/]+):(\d+)", base).groups()
    prefix = re.sub(r"https://[^/]+", "", base)
    context = tls_context(cert, key, ca)
    lock = threading.Lock()
    state = {"next": 0, "errors": []}

    def worker():
        connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=60)
        while True:
            with lock:
                index = state["next"]
                state["next"] += 1
            if index >= len(lines) or state["errors"]:
                break
            line = lines[index]
            resource = json.loads(line)
            url = f"{prefix}/{resource['resourceType']}/{resource['id']}"
            connection.request("PUT", url, body=line.encode(), headers={"Content-Type": "application/fhir+json"})
            reply = connection.getresponse()
            reply.read()
            if reply.status not in (200, 201):
                with lock:
                    state["errors"].append(f"PUT {url}: {reply.status}")
        connection.close()

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


# MARK: Tokens

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def der_to_raw(der, size=32):
    """An ECDSA DER signature (SEQUENCE of two INTEGERs) as JWS's raw r || s."""
    def length(at):
        first = der[at]
        if first < 0x80:
            return first, at + 1
        count = first & 0x7F
        return int.from_bytes(der[at + 1:at + 1 + count], "big"), at + 1 + count

    if der[0] != 0x30:
        raise ValueError("not a DER SEQUENCE")
    _, at = length(1)
    parts = []
    for _ in range(2):
        if der[at] != 0x02:
            raise ValueError("not a DER INTEGER")
        n, at = length(at + 1)
        value = der[at:at + n].lstrip(b"\x00")
        parts.append(value.rjust(size, b"\x00"))
        at += n
    return parts[0] + parts[1]


def token(key, iss, aud, scope, sub):
    now = int(time.time())
    header = b64url(json.dumps({"alg": "ES256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = b64url(json.dumps({"iss": iss, "aud": aud, "sub": sub, "scope": scope, "iat": now, "exp": now + 86400},
                               separators=(",", ":")).encode())
    signing_input = f"{header}.{claims}".encode()
    with tempfile.NamedTemporaryFile() as f:
        f.write(signing_input)
        f.flush()
        der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key, f.name], check=True, capture_output=True).stdout
    return f"{header}.{claims}.{b64url(der_to_raw(der))}"


# MARK: Status

def status(base, context):
    host, port = re.match(r"https://([^:/]+):(\d+)", base).groups()
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
    connection.request("GET", "/status")
    reply = connection.getresponse()
    body = json.loads(reply.read())
    connection.close()
    return body


def wait_applied(edge, origin, cert, key, ca, timeout):
    context = tls_context(cert, key, ca)
    deadline = time.monotonic() + float(timeout)
    start = time.monotonic()
    last = None
    while time.monotonic() < deadline:
        try:
            head = status(origin, context)["head_lsn"]
            applied = status(edge, context).get("applied_lsn")
            last = (applied, head)
            if head > 0 and applied == head:
                print(f"edge applied LSN {applied} = origin head in {time.monotonic() - start:.1f} s")
                return
        except (OSError, ValueError, KeyError, http.client.HTTPException) as error:
            last = error
        time.sleep(0.5)
    sys.exit(f"wait-applied: edge did not catch up within {timeout} s (applied, head: {last})")


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
    host, port = re.match(r"https://([^:/]+):(\d+)", url).groups()
    context = ssl.create_default_context(cafile=ca)
    context.check_hostname = False
    latencies, failures, lock = [], [0], threading.Lock()
    deadline = time.monotonic() + float(seconds)

    def worker():
        connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
        mine, bad = [], 0
        while time.monotonic() < deadline:
            start = time.monotonic()
            try:
                connection.request("GET", f"/fhir/Observation/obs-{random.randrange(int(n))}",
                                   headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"})
                reply = connection.getresponse()
                reply.read()
                if reply.status != 200:
                    bad += 1
            except (OSError, http.client.HTTPException):
                bad += 1
                connection.close()
                connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
            mine.append((time.monotonic() - start) * 1000)
        connection.close()
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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv):
    command = argv[1] if len(argv) > 1 else ""
    if command == "gen":
        gen(int(argv[2]), argv[3])
    elif command == "put":
        put(argv[2], argv[3], argv[4], argv[5], argv[6], int(argv[7]) if len(argv) > 7 else 8)
    elif command == "token":
        print(token(*argv[2:7]))
    elif command == "port":
        print(free_port())
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
    main(sys.argv)
