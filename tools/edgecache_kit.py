"""What EdgeCache's Python tools share: a pair's files, its processes, HTTPS, tokens and /status.

Used by tools/drill, the interop suite (tests/interop/conftest.py) and tools/bench-reads-helper.py.
Python's standard library only, plus the `openssl` command (ES256 keys and signatures), so that
every tool runs with the system's python3.

A pair is an origin and an edge in one work folder, laid out the same way by every tool:

    pki/                 development PKI (tools/gen-certs.sh): ca, origin, edge-TENANT, client-TENANT
    origin.kek edge.kek  key-encryption keys (`edgecache keys init`)
    idp.key idp.pub.pem  an ES256 issuer's key pair, when the edge accepts bearer tokens
    origin.yaml edge.yaml     the node configs (paths in them are relative to the work folder)
    origin-data/ edge-data/   the data folders; `listening.json` in each has the bound ports
    origin.log edge.log       each node's output

    pki = make_pair_files(work, binary, "t")
    write_origin_config(work, "t-origin")
    origin, edge = pair_nodes(work, binary)
    ports = origin.start()
    write_edge_config(work, "t-edge", "t", f"https://127.0.0.1:{ports['peer']}")
    edge.start()
"""

import base64
import ctypes
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GEN_CERTS = os.path.join(ROOT, "tools", "gen-certs.sh")


def run(command, env=None):
    """Runs a command to completion; its stdout, or RuntimeError with its output."""
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        output = (done.stderr + done.stdout).strip()
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {output}")
    return done.stdout


# MARK: PKI and keys

def make_pki(pki, tenants, origin_sans=None):
    """A development PKI in `pki` from tools/gen-certs.sh. Run again, it issues new keys and
    certificates from the same CA. `origin_sans` adds names to the origin's certificate."""
    env = dict(os.environ)
    if origin_sans:
        env["EDGECACHE_ORIGIN_SANS"] = origin_sans
    run(["bash", GEN_CERTS, pki, *tenants], env=env)


def make_keks(binary, work, names=("origin", "edge")):
    """`edgecache keys init` for each node: `work/NAME.kek`."""
    for name in names:
        run([binary, "keys", "init", "--kek-file", os.path.join(work, f"{name}.kek")])


def make_pair_files(work, binary, tenant, origin_sans=None):
    """The PKI (one tenant) and both KEKs of a pair in `work`; returns the PKI folder."""
    pki = os.path.join(work, "pki")
    make_pki(pki, [tenant], origin_sans)
    make_keks(binary, work)
    return pki


def make_es256_key(key, public_key):
    """A P-256 key pair with openssl: the private key at `key`, the public key (PEM) at `public_key`."""
    run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key])
    run(["openssl", "pkey", "-in", key, "-pubout", "-out", public_key])


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


def es256_jwt(key, claims):
    """A compact JWS (ES256) of `claims`, signed with the PEM private key at `key` (openssl)."""
    header = b64url(json.dumps({"alg": "ES256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    with tempfile.NamedTemporaryFile() as f:
        f.write(signing_input)
        f.flush()
        der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key, f.name], check=True, capture_output=True).stdout
    return f"{header}.{payload}.{b64url(der_to_raw(der))}"


@dataclass
class Issuer:
    """A token issuer an edge accepts (`auth.issuers`): its URL, the audience, its key pair."""

    issuer: str
    audience: str
    key: str
    public_key: str = "idp.pub.pem"  # as the edge config names it, relative to the work folder

    @classmethod
    def create(cls, work, issuer, audience):
        """An issuer with a new key pair at work/idp.key and work/idp.pub.pem."""
        made = cls(issuer, audience, os.path.join(work, "idp.key"))
        make_es256_key(made.key, os.path.join(work, made.public_key))
        return made

    def token(self, scope, sub, lifetime_s=3600, **claims):
        """A bearer token (ES256 JWT) with iss, aud, sub, scope, iat, exp and `claims`."""
        now = int(time.time())
        body = {"iss": self.issuer, "aud": self.audience, "sub": sub, "scope": scope, "iat": now, "exp": now + lifetime_s}
        body.update(claims)
        return es256_jwt(self.key, body)


# MARK: Configs

def write_origin_config(work, node_id, api="127.0.0.1:0", peer="127.0.0.1:0", log_level="notice", replication=None):
    """work/origin.yaml; `replication` is the inside of its mapping (`heartbeat_ms: 300`)."""
    text = (
        f"role: origin\nnode_id: {node_id}\n"
        f"listen: {{ api: \"{api}\", peer: \"{peer}\" }}\n"
        "tls: { cert: pki/origin.crt, key: pki/origin.key, ca: pki/ca.crt }\n"
        "data_dir: origin-data\nkeys: { kek_file: origin.kek }\n"
        f"log: {{ level: {log_level} }}\n")
    if replication:
        text += f"replication: {{ {replication} }}\n"
    return _write(os.path.join(work, "origin.yaml"), text)


def write_edge_config(work, node_id, tenant, origin_url, api="127.0.0.1:0", origin_options=None, log_level="notice",
                      replication=None, issuer=None):
    """work/edge.yaml. `origin_options` and `replication` are added inside their mappings
    (`request_timeout_ms: 2000`); with an `Issuer`, the edge accepts its bearer tokens."""
    origin = f"url: \"{origin_url}\"" + (f", {origin_options}" if origin_options else "")
    text = (
        f"role: edge\nnode_id: {node_id}\ntenant: {tenant}\n"
        f"listen: {{ api: \"{api}\" }}\n"
        f"origin: {{ {origin} }}\n"
        f"tls: {{ cert: pki/edge-{tenant}.crt, key: pki/edge-{tenant}.key, ca: pki/ca.crt }}\n"
        "data_dir: edge-data\nkeys: { kek_file: edge.kek }\n"
        f"log: {{ level: {log_level} }}\n")
    if replication:
        text += f"replication: {{ {replication} }}\n"
    if issuer:
        text += (
            "auth:\n  issuers:\n"
            f"    - issuer: {issuer.issuer}\n      tenant: {tenant}\n      audience: {issuer.audience}\n"
            f"      keys: [{issuer.public_key}]\n")
    return _write(os.path.join(work, "edge.yaml"), text)


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


# MARK: Nodes

def _die_with_parent():
    """In the child, before exec: SIGTERM when the parent dies (PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class Node:
    """One `edgecache serve --config CONFIG` process, its output appended to `log_path`.

    `prefix` runs it under a wrapper (`ip netns exec NS`, `faketime`); `env` adds variables;
    `die_with_parent` ends it with SIGTERM when the Python process dies before stopping it."""

    def __init__(self, name, binary, config, data_dir, log_path, prefix=(), env=None, die_with_parent=False):
        self.name, self.binary, self.config = name, binary, config
        self.data_dir, self.log_path = data_dir, log_path
        self.prefix, self.env = list(prefix), env or {}
        self.die_with_parent = die_with_parent
        self.proc = None
        self.exit_status = None

    def start(self, timeout=30):
        """Starts the node and returns its bound ports, from `<data_dir>/listening.json`."""
        ports_file = os.path.join(self.data_dir, "listening.json")
        if os.path.exists(ports_file):
            os.unlink(ports_file)
        env = dict(os.environ)
        env.update(self.env)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.prefix + [self.binary, "serve", "--config", self.config], stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, preexec_fn=_die_with_parent if self.die_with_parent else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start with status {self.proc.returncode}; see {self.log_path}")
            try:
                with open(ports_file) as f:
                    ports = json.load(f)
            except (OSError, ValueError):
                time.sleep(0.05)
                continue
            check_contract(ports, contract("listening.json"), ports_file, complete=False)
            return ports
        raise RuntimeError(f"{self.name} did not write {ports_file} within {timeout} s; see {self.log_path}")

    def pids(self):
        """The node's process, and, under a wrapper that forks (faketime), its child too."""
        if not self.proc or self.proc.poll() is not None:
            return []
        pids = [self.proc.pid]
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                pids = [int(p) for p in f.read().split()] + pids
        except OSError:
            pass
        return pids

    def signal(self, sig):
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
            if self.prefix and self.prefix[0] == "faketime":
                break  # the wrapper follows its child

    def kill(self):
        self.signal(signal.SIGKILL)
        if self.proc:
            self.proc.wait()

    def stop(self, timeout=20):
        """SIGTERM (after SIGCONT, in case it is stopped), then waits; SIGKILL only if it does not
        stop within `timeout`. Returns and keeps the exit status (a string if it was killed)."""
        if not self.proc or self.proc.poll() is not None:
            self.exit_status = self.proc.returncode if self.proc else None
            return self.exit_status
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.exit_status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait()
            self.exit_status = "killed after SIGTERM timed out"
        return self.exit_status

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"


def pair_nodes(work, binary, origin_prefix=(), edge_prefix=(), edge_env=None, die_with_parent=False):
    """The origin and the edge of the pair in `work` (configs written or not yet), not started."""
    def node(name, prefix, env):
        return Node(name, binary, os.path.join(work, f"{name}.yaml"), os.path.join(work, f"{name}-data"),
                    os.path.join(work, f"{name}.log"), prefix=prefix, env=env, die_with_parent=die_with_parent)
    return node("origin", origin_prefix, None), node("edge", edge_prefix, edge_env)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout, what, interval=0.1):
    """Calls `condition` until it returns something true, and returns that; an exception counts
    as not yet. RuntimeError after `timeout` seconds, with the last answer or exception."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = condition()
            if last:
                return last
        except ContractError:
            raise
        except Exception as error:
            last = f"{type(error).__name__}: {error}"
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what} (last: {last})")


# MARK: HTTPS

def tls_context(ca, cert=None, key=None, check_hostname=True):
    """Trusts only `ca`; presents `cert` and `key` when given."""
    context = ssl.create_default_context(cafile=ca)
    if cert:
        context.load_cert_chain(cert, key)
    context.check_hostname = check_hostname
    return context


def address(url):
    """("host", port) of an https URL (any path is ignored)."""
    host, port = re.match(r"https://([^:/]+):(\d+)", url).groups()
    return host, int(port)


class Client:
    """HTTPS with one TLS context; one keep-alive connection per thread and (host, port)."""

    def __init__(self, context):
        self.context = context
        self.local = threading.local()

    def request(self, method, base, path, body=None, headers=None, timeout=5.0):
        """(status, headers with lower-case names, body bytes); `base` is (host, port). A body
        is sent as application/fhir+json unless headers say otherwise."""
        host, port = base
        conns = getattr(self.local, "conns", None)
        if conns is None:
            conns = self.local.conns = {}
        conn = conns.get(base)
        if conn is None:
            conn = http.client.HTTPSConnection(host, port, context=self.context, timeout=timeout)
            conns[base] = conn
        conn.timeout = timeout
        try:
            data = body.encode() if isinstance(body, str) else body
            hdrs = dict(headers or {})
            if data is not None:
                hdrs.setdefault("Content-Type", "application/fhir+json")
            conn.request(method, path, body=data, headers=hdrs)
            response = conn.getresponse()
            payload = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, payload
        except Exception:
            conn.close()
            conns.pop(base, None)
            raise

    def json(self, method, base, path, body=None, headers=None, timeout=5.0):
        """As `request`, with the body parsed as JSON ({} when it is not JSON)."""
        status, hdrs, payload = self.request(method, base, path, body, headers, timeout)
        try:
            return status, hdrs, json.loads(payload or b"{}")
        except ValueError:
            return status, hdrs, {}

    def close(self):
        """Closes this thread's connections."""
        for conn in getattr(self.local, "conns", {}).values():
            conn.close()
        self.local.conns = {}


# MARK: Status

CONTRACTS = os.path.join(ROOT, "docs", "contracts")


def contract(name):
    """A fixture of docs/contracts/ (kept equal to the node's Codable types by NodeContractsTests)."""
    with open(os.path.join(CONTRACTS, name)) as f:
        return json.load(f)


class ContractError(RuntimeError):
    """A node's document does not match docs/contracts: a bug, never a node that is down."""


def check_contract(document, fixture, where, complete=True):
    """RuntimeError unless every key of `document` is in `fixture` (recursively), with the same
    JSON kind or null, and, when `complete`, every key of `fixture` is in `document`. A renamed or
    dropped key fails here, where the tool reads it, rather than as a silent None later."""
    if not isinstance(document, dict):
        raise ContractError(f"{where}: expected an object, got {type(document).__name__}")
    unknown = sorted(set(document) - set(fixture))
    missing = sorted(set(fixture) - set(document)) if complete else []
    if unknown or missing:
        raise ContractError(f"{where} does not match docs/contracts: unknown {unknown}, missing {missing}")
    for key, value in document.items():
        expected = fixture[key]
        if value is None or expected is None:
            continue
        if isinstance(expected, dict):
            # Nested members may be absent (a bootstrap that is not running sends no progress).
            check_contract(value, expected, f"{where}.{key}", complete=False)
        elif type(value) is not type(expected) and not (type(value) in (int, float) and type(expected) in (int, float)):
            raise ContractError(f"{where}.{key}: expected {type(expected).__name__}, got {type(value).__name__}")


def read_status(client, base, timeout=3.0):
    """A node's /status as a dict, checked against its role's contract; RuntimeError unless it
    answers 200 with a document that matches."""
    status, _, body = client.json("GET", base, "/status", timeout=timeout)
    if status != 200:
        raise RuntimeError(f"GET /status: HTTP {status}")
    role = body.get("role")
    if role not in ("edge", "origin"):
        raise ContractError(f"GET /status: unknown role {role!r}")
    check_contract(body, contract(f"status-{role}.json"), "/status")
    return body


def caught_up(edge_status, origin_head):
    """The edge's link is live and it has applied the origin's head (a head above 0)."""
    return (edge_status.get("link") == "live" and origin_head is not None and origin_head > 0
            and edge_status.get("applied_lsn", -1) >= origin_head)


def wait_applied(client, edge, origin, timeout, interval=0.5):
    """Until the edge has applied the origin's head LSN; returns the edge's /status and the
    seconds waited (RuntimeError after `timeout`, with the last applied LSN and head)."""
    start = time.monotonic()

    def check():
        head = read_status(client, origin)["head_lsn"]
        status = read_status(client, edge)
        if caught_up(status, head):
            return status
        raise RuntimeError(f"link {status.get('link')}, applied {status.get('applied_lsn')}, head {head}")
    status = wait_for(check, timeout, "the edge to apply the origin's head", interval)
    return status, time.monotonic() - start
