"""The interop suite's pair of nodes and its data (issue 7, item 7).

One session fixture, `pair`, starts a fresh origin and edge with `edgecache serve` in a
throw-away folder: a development PKI from tools/gen-certs.sh, KEKs from `edgecache keys init`,
configs on ephemeral ports (read back from `<data_dir>/listening.json`), and on the edge an
ES256 issuer whose bearer tokens the edge accepts. It waits until the edge's `/status` says the
link is live, loads realistic R4 data into the origin (carebundle, generated offline with a
fixed seed; PUT over the origin's FHIR API with the client certificate), waits until the edge
has applied the origin's head, and at the end stops both nodes with SIGTERM and waits for them.

The clients under test talk to the edge. `fhirclient` presents the tenant's client
certificate, `fhirpy` a bearer token; both verify the server against the PKI's CA.

    pytest tests/interop --edgecache .build/debug/edgecache      (tools/interop does this)

Set EDGECACHE_INTEROP_KEEP=1 to keep the work folder (configs, logs, data) after the run; it
is also kept when a test failed or a node did not stop cleanly, and its path is printed at the
end.
"""

import base64
import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TENANT = "interop"
ISSUER = "https://idp.interop.example"
AUDIENCE = "https://edge.interop.example/fhir"

# The data: one carebundle patient per profile, generated offline. The seed and the package
# version (pinned in requirements.txt) fix every byte, so every run loads the same resources.
CAREBUNDLE_SEED = 7007
CAREBUNDLE_PROFILES = ("type2_diabetes", "hypertension", "ckd_stage3", "anaemia")

START_TIMEOUT_S = 30
CATCH_UP_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20


SUMMARY = pytest.StashKey[list]()


def pytest_configure(config):
    config.stash[SUMMARY] = []


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for line in config.stash.get(SUMMARY, []):
        terminalreporter.write_line(f"interop: {line}")


def pytest_addoption(parser):
    parser.addoption(
        "--edgecache",
        default=os.environ.get("EDGECACHE_BIN", os.path.join(REPO, ".build", "debug", "edgecache")),
        help="the edgecache binary to run (default: .build/debug/edgecache, or $EDGECACHE_BIN)",
    )


# MARK: Nodes


def die_with_parent():
    """In the child, before exec: SIGTERM when the test process dies (PR_SET_PDEATHSIG), so a
    pytest killed before its teardown leaves no `edgecache serve` behind."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class Node:
    """One `edgecache serve` process and its log."""

    def __init__(self, name, binary, config, data_dir, log_path):
        self.name, self.binary, self.config = name, binary, config
        self.data_dir, self.log_path = data_dir, log_path
        self.proc = None
        self.exit_status = None

    def start(self):
        """Starts the node and returns its bound ports, from `<data_dir>/listening.json`."""
        ports_file = os.path.join(self.data_dir, "listening.json")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "serve", "--config", self.config], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start with status {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with open(ports_file) as f:
                    return json.load(f)
            except (OSError, ValueError):
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not write {ports_file} within {START_TIMEOUT_S} s:\n{self.log_tail()}")

    def stop(self):
        """SIGTERM, then waits; SIGKILL only if the node does not stop within STOP_TIMEOUT_S."""
        if self.proc is None or self.proc.poll() is not None:
            self.exit_status = self.proc.returncode if self.proc else None
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.exit_status = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.exit_status = "killed after SIGTERM timed out"

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"


class FHIRHTTP:
    """Plain HTTPS calls to one node with the tenant's client certificate: the suite's own view
    of the server (headers, status codes, the origin's copy), never the clients under test."""

    def __init__(self, base, ca, cert, key):
        self.base = base
        self.session = tls_session(ca, cert, key)

    def get(self, path, **kwargs):
        return self.session.get(f"{self.base}/{path.lstrip('/')}", timeout=10, **kwargs)

    def put(self, path, resource):
        return self.session.put(
            f"{self.base}/{path.lstrip('/')}", data=json.dumps(resource),
            headers={"Content-Type": "application/fhir+json"}, timeout=10)

    def status(self):
        reply = self.get("/status")
        reply.raise_for_status()
        return reply.json()

    def close(self):
        self.session.close()


@dataclass
class Pair:
    """A running origin and edge, and what a client needs to reach them."""

    work: str
    ca: str
    client_cert: str
    client_key: str
    idp_key: object
    origin_node: Node = None
    edge_node: Node = None
    origin_base: str = ""
    edge_base: str = ""
    origin: FHIRHTTP = None
    edge: FHIRHTTP = None

    @property
    def edge_fhir(self):
        return f"{self.edge_base}/fhir"

    @property
    def origin_fhir(self):
        return f"{self.origin_base}/fhir"

    def token(self, scope="user/*.cruds", sub="interop-app", lifetime_s=3600, **claims):
        """An ES256 JWT from the edge's configured issuer."""
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "scope": scope, "iat": now, "exp": now + lifetime_s}
        body.update(claims)
        return es256_jwt(self.idp_key, body)

    def wait_until(self, what, check, timeout_s):
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            try:
                ok, last = check()
                if ok:
                    return last
            except (requests.RequestException, ValueError, KeyError) as error:
                last = error
            time.sleep(0.1)
        raise RuntimeError(f"timed out after {timeout_s} s waiting for {what} (last: {last})\n"
                           f"edge log:\n{self.edge_node.log_tail()}")

    def wait_caught_up(self):
        """Until the edge's link is live and it has applied the origin's head LSN."""
        def check():
            head = self.origin.status()["head_lsn"]
            status = self.edge.status()
            return status["link"] == "live" and status["applied_lsn"] >= head, status
        return self.wait_until("the edge to apply the origin's head", check, CATCH_UP_TIMEOUT_S)


def tls_session(ca, cert=None, key=None):
    """A requests Session that trusts only `ca` (and presents `cert` when given).

    `trust_env` is off: with it on, REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE in the environment (set
    on this machine) take precedence over `Session.verify`, and the PKI's CA would be ignored.
    """
    session = requests.Session()
    session.trust_env = False
    session.verify = ca
    if cert:
        session.cert = (cert, key)
    return session


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def es256_jwt(private_key, claims):
    header = b64url(json.dumps({"alg": "ES256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    r, s = decode_dss_signature(private_key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return f"{header}.{payload}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def run(*command):
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def prepare(work, binary):
    """PKI, KEKs, the issuer's key and both configs in `work`; returns a Pair not yet started."""
    pki = os.path.join(work, "pki")
    run(os.path.join(REPO, "tools", "gen-certs.sh"), pki, TENANT)
    run(binary, "keys", "init", "--kek-file", os.path.join(work, "origin.kek"))
    run(binary, "keys", "init", "--kek-file", os.path.join(work, "edge.kek"))
    idp_key = ec.generate_private_key(ec.SECP256R1())
    write(os.path.join(work, "idp.pub.pem"), idp_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode())
    write(os.path.join(work, "origin.yaml"), f"""\
role: origin
node_id: interop-origin
listen: {{ api: "127.0.0.1:0", peer: "127.0.0.1:0" }}
tls: {{ cert: pki/origin.crt, key: pki/origin.key, ca: pki/ca.crt }}
data_dir: origin-data
keys: {{ kek_file: origin.kek }}
log: {{ level: notice }}
""")
    return Pair(work=work, ca=os.path.join(pki, "ca.crt"), client_cert=os.path.join(pki, f"client-{TENANT}.crt"),
                client_key=os.path.join(pki, f"client-{TENANT}.key"), idp_key=idp_key)


def edge_config(work, origin_peer_port):
    write(os.path.join(work, "edge.yaml"), f"""\
role: edge
node_id: interop-edge
tenant: {TENANT}
listen: {{ api: "127.0.0.1:0" }}
origin: {{ url: "https://127.0.0.1:{origin_peer_port}" }}
tls: {{ cert: pki/edge-{TENANT}.crt, key: pki/edge-{TENANT}.key, ca: pki/ca.crt }}
data_dir: edge-data
keys: {{ kek_file: edge.kek }}
log: {{ level: notice }}
auth:
  issuers:
    - issuer: {ISSUER}
      tenant: {TENANT}
      audience: {AUDIENCE}
      keys: [idp.pub.pem]
""")
    return os.path.join(work, "edge.yaml")


@pytest.fixture(scope="session")
def pair(request):
    binary = os.path.abspath(request.config.getoption("--edgecache"))
    if not os.access(binary, os.X_OK):
        pytest.exit(f"no edgecache binary at {binary} (build it, or pass --edgecache PATH)", returncode=2)
    work = tempfile.mkdtemp(prefix="edgecache-interop.")
    p = None
    try:
        p = prepare(work, binary)
        p.origin_node = Node("origin", binary, os.path.join(work, "origin.yaml"), os.path.join(work, "origin-data"),
                             os.path.join(work, "origin.log"))
        origin_ports = p.origin_node.start()
        p.origin_base = f"https://127.0.0.1:{origin_ports['api']}"
        p.edge_node = Node("edge", binary, edge_config(work, origin_ports["peer"]), os.path.join(work, "edge-data"),
                           os.path.join(work, "edge.log"))
        edge_ports = p.edge_node.start()
        p.edge_base = f"https://127.0.0.1:{edge_ports['api']}"
        p.origin = FHIRHTTP(p.origin_base, p.ca, p.client_cert, p.client_key)
        p.edge = FHIRHTTP(p.edge_base, p.ca, p.client_cert, p.client_key)
        def live():
            status = p.edge.status()
            return status["link"] == "live", status
        p.wait_until("the edge's link to go live", live, START_TIMEOUT_S)
        yield p
    finally:
        helpers = [h for h in (p.edge, p.origin) if h] if p else []
        nodes = [n for n in (p.edge_node, p.origin_node) if n] if p else []
        for helper in helpers:
            helper.close()
        for node in nodes:
            node.stop()
        stops = {n.name: n.exit_status for n in nodes}
        summary = request.config.stash[SUMMARY]
        if stops:
            summary.append("stopped with SIGTERM: " + ", ".join(f"{name} exit {status}" for name, status in stops.items()))
        unclean = any(status != 0 for status in stops.values())
        if unclean or request.session.testsfailed > 0 or os.environ.get("EDGECACHE_INTEROP_KEEP") == "1":
            summary.append(f"work folder kept (configs, logs, data): {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
        if unclean:
            raise RuntimeError(f"a node did not stop cleanly after SIGTERM: {stops}")


# MARK: Data


@dataclass
class Dataset:
    """The carebundle resources loaded into the origin, as loaded (JSON objects)."""

    resources: list = field(default_factory=list)
    profile_of: dict = field(default_factory=dict)  # patient id -> carebundle profile
    load_seconds: float = 0.0

    @property
    def patients(self):
        return list(self.profile_of)

    @property
    def write_patient(self):
        """The patient whose record the write tests add to; the others stay as loaded."""
        return self.patients[-1]

    @property
    def read_patients(self):
        return self.patients[:-1]

    def untouched(self):
        """The loaded resources that no write test changes: all but the write patient's record."""
        ref = f"Patient/{self.write_patient}"
        return [r for r in self.resources
                if r["id"] != self.write_patient and (r.get("subject") or {}).get("reference") != ref]

    def of_type(self, resource_type):
        return [r for r in self.resources if r["resourceType"] == resource_type]

    def get(self, resource_type, resource_id):
        return next(r for r in self.resources if r["resourceType"] == resource_type and r["id"] == resource_id)

    def ids_about(self, resource_type, patient_id, field_name="subject"):
        """Ids of the loaded resources of a type whose `field_name` references the patient."""
        ref = f"Patient/{patient_id}"
        return {r["id"] for r in self.of_type(resource_type) if (r.get(field_name) or {}).get("reference") == ref}

    def counts(self):
        out = {}
        for r in self.resources:
            out[r["resourceType"]] = out.get(r["resourceType"], 0) + 1
        return dict(sorted(out.items()))


def generate_dataset():
    """One carebundle patient per profile (fixed seed), as resources with ids and `Type/id`
    references (carebundle's bulk form, to_ndjson)."""
    from carebundle import generate_bundle, to_ndjson

    data = Dataset()
    for index, profile in enumerate(CAREBUNDLE_PROFILES):
        bundle = generate_bundle(profile=profile, seed=CAREBUNDLE_SEED, index=index, sex=("F", "M")[index % 2])
        streams = to_ndjson(bundle)
        resources = [json.loads(line) for text in streams.values() for line in text.splitlines() if line]
        patient = next(r for r in resources if r["resourceType"] == "Patient")
        data.profile_of[patient["id"]] = profile
        # Patients and practitioners first, as a feed would send them.
        order = {"Patient": 0, "Practitioner": 1}
        data.resources += sorted(resources, key=lambda r: order.get(r["resourceType"], 2))
    return data


@pytest.fixture(scope="session")
def dataset(pair, request):
    data = generate_dataset()
    start = time.monotonic()
    for resource in data.resources:
        reply = pair.origin.put(f"/fhir/{resource['resourceType']}/{resource['id']}", resource)
        assert reply.status_code == 201, f"loading {resource['resourceType']}/{resource['id']}: {reply.status_code} {reply.text}"
    pair.wait_caught_up()
    data.load_seconds = time.monotonic() - start
    counts = ", ".join(f"{n} {t}" for t, n in data.counts().items())
    request.config.stash[SUMMARY].append(
        f"loaded {len(data.resources)} carebundle resources (seed {CAREBUNDLE_SEED}, profiles "
        f"{', '.join(CAREBUNDLE_PROFILES)}): {counts}; PUT at the origin and applied at the edge in "
        f"{data.load_seconds:.1f} s")
    return data


def content(resource):
    """A resource's JSON without the parts the server assigns (meta.versionId, meta.lastUpdated)."""
    out = dict(resource)
    meta = {k: v for k, v in (out.pop("meta", None) or {}).items() if k not in ("versionId", "lastUpdated")}
    if meta:
        out["meta"] = meta
    return out
