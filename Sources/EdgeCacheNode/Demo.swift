import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheStore
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals

/// `edgecache demo`: a throw-away PKI, keys and sample data, an origin and an edge on loopback,
/// and curl commands that work when pasted: a write-through, a cached read, a version pushed by
/// the stream, then an outage (the edge's link to the origin cut with `edgecache demo link down`)
/// in which reads are served stale and labelled, a write is queued, and everything reconciles
/// when the link returns. `--tour` runs the same steps itself (``DemoTour``).
package enum Demo {
    package static let tenant = "st-mary"

    /// Whether a TCP port on 127.0.0.1 can be bound now.
    static func portIsFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// A free port: `preferred` if it is free, otherwise one the kernel picks.
    package static func freePort(preferred: Int) -> Int {
        if preferred > 0, portIsFree(preferred) { return preferred }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    struct DemoError: Error, CustomStringConvertible {
        let description: String
    }

    /// The demo's ports on 127.0.0.1: the usual ones when they are free, else any free port.
    package struct Ports: Sendable {
        package var originAPI = freePort(preferred: 8443)
        package var originPeer = freePort(preferred: 9443)
        package var edgeAPI = freePort(preferred: 8444)
        /// The demo's link to the origin's peer listener.
        package var link = freePort(preferred: 9444)
    }

    /// Prepares `workDir` (certificates, keys, configs) and returns the two config files.
    package static func prepare(workDir: String) throws -> (origin: String, edge: String, ports: Ports) {
        try? FileManager.default.removeItem(atPath: workDir)
        try FileManager.default.createDirectory(atPath: workDir, withIntermediateDirectories: true)
        // Made in-process, so the demo runs from any folder, with no repository checkout or openssl CLI.
        try DemoPKI(tenants: [tenant]).write(to: workDir + "/certs")
        try KeyEncryptionKey.generate().write(toNewFile: workDir + "/origin.kek")
        try KeyEncryptionKey.generate().write(toNewFile: workDir + "/edge.kek")
        // The edge reaches the origin's peer listener through the demo's link (a TCP proxy that
        // `edgecache demo link down|up` cuts and restores), as it would through a WAN.
        let ports = Ports()
        let origin = """
            role: origin
            node_id: origin-1
            listen: { api: "127.0.0.1:\(ports.originAPI)", peer: "127.0.0.1:\(ports.originPeer)" }
            tls: { cert: certs/origin.crt, key: certs/origin.key, ca: certs/ca.crt }
            data_dir: origin-data
            keys: { kek_file: origin.kek }
            log: { level: warning }

            """
        let edge = """
            role: edge
            node_id: edge-stmary-1
            tenant: \(tenant)
            listen: { api: "127.0.0.1:\(ports.edgeAPI)" }
            origin: { url: "https://127.0.0.1:\(ports.link)" }   # the demo's link to the origin's peer listener
            tls: { cert: certs/edge-\(tenant).crt, key: certs/edge-\(tenant).key, ca: certs/ca.crt }
            data_dir: edge-data
            keys: { kek_file: edge.kek }
            log: { level: warning }

            """
        try origin.write(toFile: workDir + "/origin.yaml", atomically: true, encoding: .utf8)
        try edge.write(toFile: workDir + "/edge.yaml", atomically: true, encoding: .utf8)
        return (workDir + "/origin.yaml", workDir + "/edge.yaml", ports)
    }

    /// Sample data: three patients with identifiers and a few observations each.
    static func seed(_ store: any OriginStore) async throws {
        let names = [("Okafor", "Ada"), ("Lindqvist", "Erik"), ("Moreau", "Camille")]
        for (i, name) in names.enumerated() {
            let patientID = "pat-\(i + 1)"
            let patient = try FHIRResource.parse(
                body: Array(
                    """
                    {"resourceType":"Patient","id":"\(patientID)","identifier":[{"system":"urn:demo:mrn","value":"MRN-\(1000 + i)"}],\
                    "name":[{"family":"\(name.0)","given":["\(name.1)"]}],"gender":"\(i == 1 ? "male" : "female")","birthDate":"19\(60 + i * 7)-0\(i + 3)-1\(i)"}
                    """.utf8), type: "Patient", urlID: patientID)
            _ = try await store.write(tenant: tenant, .update(type: "Patient", id: patientID, resource: patient, ifMatch: nil))
            for k in 0..<3 {
                let observation = try FHIRResource.parse(
                    body: Array(
                        """
                        {"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},\
                        "subject":{"reference":"Patient/\(patientID)"},"valueQuantity":{"value":\(62 + i * 5 + k),"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}}
                        """.utf8), type: "Observation", urlID: nil)
                _ = try await store.write(tenant: tenant, .create(type: "Observation", resource: observation))
            }
        }
    }

    /// How to run this program again from another terminal (its absolute path).
    static var executable: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
    }

    /// The banner with URLs and ready-to-paste curl commands.
    static func banner(workDir: String, ports: Ports) -> String {
        let certs = "\(workDir)/certs"
        let bin = executable
        let auth = "--cacert \(certs)/ca.crt --cert \(certs)/client-\(tenant).crt --key \(certs)/client-\(tenant).key"
        let edge = "https://127.0.0.1:\(ports.edgeAPI)"
        let origin = "https://127.0.0.1:\(ports.originAPI)"
        return """

            EdgeCache demo is running (Ctrl-C stops it). Work folder: \(workDir)
              origin FHIR API : \(origin)/fhir      (peer/replication listener: https://127.0.0.1:\(ports.originPeer))
              edge FHIR API   : \(edge)/fhir      (tenant \(tenant))
              configs         : \(workDir)/origin.yaml, \(workDir)/edge.yaml
              edge -> origin  : through the demo's link, 127.0.0.1:\(ports.link) (cut it with: edgecache demo link down)

            Paste these in another terminal (each authenticates with the st-mary clinical app certificate):

            # 1. Create a Patient through the edge (forwarded to the origin, cached at the edge):
            curl -sS -i \(auth) -X PUT -H 'Content-Type: application/fhir+json' \\
              -d '{"resourceType":"Patient","id":"demo-1","name":[{"family":"Nightingale","given":["Florence"]}]}' \\
              \(edge)/fhir/Patient/demo-1

            # 2. Read it back from the edge: look for "Cache-Status: edgecache; hit":
            curl -sS -i \(auth) \(edge)/fhir/Patient/demo-1

            # 3. Update it at the origin (version 2):
            curl -sS -i \(auth) -X PUT -H 'Content-Type: application/fhir+json' \\
              -d '{"resourceType":"Patient","id":"demo-1","name":[{"family":"Nightingale","given":["Florence"]}],"gender":"female"}' \\
              \(origin)/fhir/Patient/demo-1

            # 4. Within a second the edge serves version 2 as a hit (ETag: W/"2"), pushed by the change stream:
            curl -sS -i \(auth) \(edge)/fhir/Patient/demo-1

            # More: search the edge's local copy, and see the edge's replication status:
            curl -sS \(auth) '\(edge)/fhir/Observation?patient=pat-1&_count=2'
            curl -sS \(auth) \(edge)/status

            Then take the cloud away. The ward keeps reading, writes queue durably, nothing is lost:

            # 5. Cut the edge's link to the origin (the demo's WAN); it returns once the edge has noticed:
            \(bin) demo link down --work-dir \(workDir)

            # 6. Read at the edge: still 200 from the cache, labelled: Cache-Status detail="origin-unreachable", and an Age:
            curl -sS -i \(auth) \(edge)/fhir/Patient/demo-1

            # 7. Write at the edge: 202 Accepted, durable in the edge's outbox (EdgeCache-Write-Status: queued):
            curl -sS -i \(auth) -X PUT -H 'Content-Type: application/fhir+json' -H 'Idempotency-Key: demo-outage-1' \\
              -d '\(outageObservation)' \\
              \(edge)/fhir/Observation/demo-hr-1

            # 8. Read the queued write back at the edge (Cache-Status detail="pending-write"):
            curl -sS -i \(auth) \(edge)/fhir/Observation/demo-hr-1

            # 9. The edge's dashboard: link DOWN (origin-unreachable), outbox queued 1:
            \(bin) status --config \(workDir)/edge.yaml --once

            # 10. Restore the link; it returns once the edge is live again and has replayed its outbox:
            \(bin) demo link up --work-dir \(workDir)

            # 11. The write reached the origin, once (ETag: W/"1"):
            curl -sS -i \(auth) \(origin)/fhir/Observation/demo-hr-1

            # 12. The edge has converged: link LIVE, outbox queued 0, state CONVERGED:
            \(bin) status --config \(workDir)/edge.yaml --once

            """
    }

    /// The Observation that the outage steps write at the edge (a heart rate taken during the downtime).
    static let outageObservation =
        #"{"resourceType":"Observation","id":"demo-hr-1","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/demo-1"},"valueQuantity":{"value":88,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}}"#

    /// Runs the demo until SIGINT/SIGTERM; with `tour`, runs ``DemoTour`` instead of waiting and
    /// returns whether every step answered as expected.
    @discardableResult
    package static func run(workDir: String, tour: Bool = false, logger: Logger) async throws -> Bool {
        let prepared = try prepare(workDir: workDir)
        let originConfig = try NodeConfig.load(path: prepared.origin)
        let edgeConfig = try NodeConfig.load(path: prepared.edge)
        guard case .origin(let origin) = try NodeRuntime(config: originConfig, logger: logger) else {
            throw DemoError(description: "\(prepared.origin) does not configure an origin")
        }
        try await seed(origin.store)
        let link = try await TCPProxy(targetPort: prepared.ports.originPeer, port: prepared.ports.link)
        guard case .edge(let edge) = try NodeRuntime(config: edgeConfig, logger: logger) else {
            throw DemoError(description: "\(prepared.edge) does not configure an edge")
        }
        let control = DemoLinkControl(workDir: workDir, proxy: link, edge: edge)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = (origin.services + edge.services).map { .init(service: $0) }
        services.append(.init(service: control))
        let result = DemoTour.Result()
        if tour {
            let steps = DemoTour(workDir: workDir, ports: prepared.ports, control: control, edge: edge, result: result)
            services.append(
                .init(
                    service: steps, successTerminationBehavior: .gracefullyShutdownGroup,
                    failureTerminationBehavior: .gracefullyShutdownGroup))
        } else {
            let announcer = DemoAnnouncer(edge: edge, text: banner(workDir: workDir, ports: prepared.ports))
            services.append(.init(service: announcer, successTerminationBehavior: .ignore))
        }
        var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(10)
        do {
            try await ServiceGroup(configuration: configuration).run()
        } catch {
            await link.close()
            await edge.shutdown()
            throw error
        }
        await link.close()
        await edge.shutdown()
        return result.passed
    }
}

/// Prints the demo banner once the edge has caught up with the origin.
struct DemoAnnouncer: Service {
    let edge: EdgeNode
    let text: String

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            for _ in 0..<300 {
                if edge.link.isLive { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }
}
