"""The interop suite's pair of nodes and its data (issue 7, item 7).

One session fixture, `pair`, starts a fresh origin and edge with `edgecache serve` in a
throw-away folder, with tools/edgecache_kit.py: a development PKI from tools/gen-certs.sh, KEKs
from `edgecache keys init`, configs on ephemeral ports (read back from
`<data_dir>/listening.json`), and on the edge an ES256 issuer whose bearer tokens the edge
accepts. It waits until the edge's `/status` says the link is live, loads realistic R4 data into
the origin (carebundle, generated offline with a fixed seed; PUT over the origin's FHIR API with
the client certificate), waits until the edge has applied the origin's head, and at the end
stops both nodes with SIGTERM and waits for them.

The clients under test talk to the edge. `fhirclient` presents the tenant's client
certificate, `fhirpy` a bearer token; both verify the server against the PKI's CA.

    pytest tests/interop --edgecache .build/debug/edgecache      (tools/interop does this)

Set EDGECACHE_INTEROP_KEEP=1 to keep the work folder (configs, logs, data) after the run; it
is also kept when a test failed or a node did not stop cleanly, and its path is printed at the
end.
"""

import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field

import pytest
import requests

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools"))
import edgecache_kit as kit  # noqa: E402 (tools/ is not a package)

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


def start(node):
    """Starts a node; its bound ports. A node that does not start fails with its log's last lines."""
    try:
        return node.start(START_TIMEOUT_S)
    except RuntimeError as error:
        raise RuntimeError(f"{error}:\n{node.log_tail()}") from None


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

    def close(self):
        self.session.close()


@dataclass
class Pair:
    """A running origin and edge, and what a client needs to reach them."""

    work: str
    ca: str
    client_cert: str
    client_key: str
    issuer: kit.Issuer
    origin_node: kit.Node
    edge_node: kit.Node
    status_client: kit.Client
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
        return self.issuer.token(scope, sub, lifetime_s, **claims)

    def wait_live(self):
        """Until the edge's /status says its link to the origin is live."""
        edge = kit.address(self.edge_base)
        self._with_edge_log(kit.wait_for, lambda: kit.read_status(self.status_client, edge)["link"] == "live",
                            START_TIMEOUT_S, "the edge's link to go live")

    def wait_caught_up(self):
        """Until the edge's link is live and it has applied the origin's head LSN."""
        return self._with_edge_log(kit.wait_applied, self.status_client, kit.address(self.edge_base),
                                   kit.address(self.origin_base), CATCH_UP_TIMEOUT_S, 0.1)[0]

    def _with_edge_log(self, wait, *args):
        """A wait that fails with the edge's log."""
        try:
            return wait(*args)
        except RuntimeError as error:
            raise RuntimeError(f"{error}\nedge log:\n{self.edge_node.log_tail()}") from None


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


def prepare(work, binary):
    """PKI, KEKs, the issuer's key and the origin's config in `work`; a Pair not yet started."""
    pki = kit.make_pair_files(work, binary, TENANT)
    issuer = kit.Issuer.create(work, ISSUER, AUDIENCE)
    kit.write_origin_config(work, "interop-origin")
    origin, edge = kit.pair_nodes(work, binary, die_with_parent=True)
    ca, cert, key = (os.path.join(pki, name) for name in ("ca.crt", f"client-{TENANT}.crt", f"client-{TENANT}.key"))
    return Pair(work=work, ca=ca, client_cert=cert, client_key=key, issuer=issuer, origin_node=origin, edge_node=edge,
                status_client=kit.Client(kit.tls_context(ca, cert, key)))


@pytest.fixture(scope="session")
def pair(request):
    binary = os.path.abspath(request.config.getoption("--edgecache"))
    if not os.access(binary, os.X_OK):
        pytest.exit(f"no edgecache binary at {binary} (build it, or pass --edgecache PATH)", returncode=2)
    work = tempfile.mkdtemp(prefix="edgecache-interop.")
    p = None
    try:
        p = prepare(work, binary)
        origin_ports = start(p.origin_node)
        p.origin_base = f"https://127.0.0.1:{origin_ports['api']}"
        kit.write_edge_config(work, "interop-edge", TENANT, f"https://127.0.0.1:{origin_ports['peer']}", issuer=p.issuer)
        edge_ports = start(p.edge_node)
        p.edge_base = f"https://127.0.0.1:{edge_ports['api']}"
        p.origin = FHIRHTTP(p.origin_base, p.ca, p.client_cert, p.client_key)
        p.edge = FHIRHTTP(p.edge_base, p.ca, p.client_cert, p.client_key)
        p.wait_live()
        yield p
    finally:
        helpers = [h for h in (p.edge, p.origin, p.status_client) if h] if p else []
        nodes = [n for n in (p.edge_node, p.origin_node) if n.proc] if p else []
        for helper in helpers:
            helper.close()
        for node in nodes:
            node.stop(STOP_TIMEOUT_S)
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
