import ArgumentParser
import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheNode
import EdgeCacheStore
import Foundation

/// Opens a node's audit trail from its config (running or stopped node).
func openAuditStore(_ configPath: String) throws -> (AuditStore, NodeConfig) {
    umask(0o077)
    let config: NodeConfig
    do {
        config = try NodeConfig.load(path: configPath)
    } catch {
        throw ValidationError("\(error)")
    }
    let path = config.dataDir + "/audit.sqlite"
    guard FileManager.default.fileExists(atPath: path) else {
        throw ValidationError("no audit trail at \(path); is data_dir in \(configPath) right?")
    }
    return (try AuditStore(path: path, kek: try KeyEncryptionKey.load(path: config.kekFile), clock: SystemWallClock()), config)
}

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check and export a node's hash-chained audit trail.", subcommands: [Verify.self, Export.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Report any altered, removed or reordered audit record; exits 1 if there is one.")
        @Option(name: .long, help: "The node's config file.") var config: String

        func run() async throws {
            let (store, _) = try openAuditStore(config)
            let result = try await store.verify()
            let head = Hex.encode(result.head)
            let anchor = try await store.lastAnchor()
            if result.problems.isEmpty {
                print("audit trail OK: \(result.records) records, head \(head)")
                if let anchor {
                    print("anchored at the origin up to record \(anchor.seq)")
                } else {
                    print("not yet anchored at the origin")
                }
                return
            }
            print("audit trail BROKEN: \(result.problems.count) problem(s) in \(result.records) records")
            for problem in result.problems { print("  \(problem)") }
            throw ExitCode(1)
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write the audit trail as FHIR AuditEvent NDJSON (IHE BALP shape).")
        enum Format: String, ExpressibleByArgument { case fhir }
        @Option(name: .long, help: "The node's config file.") var config: String
        @Option(name: .long, help: "Output format.") var format: Format = .fhir
        @Option(name: .long, help: "Output file (default: standard output).") var out: String?

        func run() async throws {
            let (store, nodeConfig) = try openAuditStore(config)
            var output: [UInt8] = []
            for (seq, record) in try await store.records() {
                output += AuditEventExport.auditEvent(record, seq: seq, node: nodeConfig.nodeID)
                output.append(0x0A)
            }
            if let out {
                FileManager.default.createFile(atPath: out, contents: Data(output), attributes: [.posixPermissions: 0o600])
            } else {
                FileHandle.standardOutput.write(Data(output))
            }
        }
    }
}

/// Audit records as FHIR R4 AuditEvent resources shaped after IHE Basic Audit Log Patterns.
enum AuditEventExport {
    static func auditEvent(_ r: AuditRecord, seq: Int64, node: String) -> [UInt8] {
        func obj(_ members: [(String, JSONValue)]) -> JSONValue {
            .object(JSONObject(members.map { JSONObject.Member(key: $0.0, value: $0.1) }))
        }
        func coding(_ system: String, _ code: String, _ display: String? = nil) -> JSONValue {
            var members: [(String, JSONValue)] = [("system", .string(system)), ("code", .string(code))]
            if let display { members.append(("display", .string(display))) }
            return obj(members)
        }
        let base = r.action.replacingOccurrences(of: "denied-", with: "")
        let action: String =
            switch base {
            case "create": "C"
            case "read", "vread", "search", "history": "R"
            case "update": "U"
            case "delete": "D"
            default: "E"
            }
        let outcome = r.outcome < 400 ? "0" : (r.outcome < 500 ? "4" : "8")
        var entities: [JSONValue] = []
        if let resource = r.resource {
            var what: [(String, JSONValue)] = [("reference", .string(resource))]
            if let version = r.version { what.append(("display", .string("version \(version)"))) }
            entities.append(
                obj([
                    ("what", obj(what)), ("type", coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object")),
                ]))
        }
        entities.append(
            obj([
                ("what", obj([("identifier", obj([("value", .string(r.requestID))]))])),
                ("type", coding("https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType", "XrequestId")),
            ]))
        var event: [(String, JSONValue)] = [
            ("resourceType", .string("AuditEvent")),
            ("id", .string("\(node)-\(seq)")),
            ("type", coding("http://terminology.hl7.org/CodeSystem/audit-event-type", "rest", "RESTful Operation")),
            ("subtype", .array([coding("http://hl7.org/fhir/restful-interaction", base)])),
            ("action", .string(action)),
            ("recorded", .string(FHIRTime.instant(millis: r.time))),
            ("outcome", .string(outcome)),
            ("outcomeDesc", .string("HTTP \(r.outcome)\(r.source.map { "; \($0)" } ?? "")")),
        ]
        var purposes: [JSONValue] = []
        if let purpose = r.purpose {
            purposes.append(obj([("coding", .array([coding("http://terminology.hl7.org/CodeSystem/v3-ActReason", purpose)]))]))
        }
        if let reason = r.breakGlass {
            // Break-the-glass (v3-ActReason BTG), with the reason the user gave.
            purposes.append(
                obj([
                    ("coding", .array([coding("http://terminology.hl7.org/CodeSystem/v3-ActReason", "BTG", "break the glass")])),
                    ("text", .string(reason)),
                ]))
        }
        if !purposes.isEmpty { event.append(("purposeOfEvent", .array(purposes))) }
        event.append(
            ("agent", .array([obj([("who", obj([("identifier", obj([("value", .string(r.actor))]))])), ("requestor", .bool(true))])])))
        event.append(
            (
                "source",
                obj([
                    ("site", .string(r.tenant)), ("observer", obj([("display", .string(node))])),
                    ("type", .array([coding("http://terminology.hl7.org/CodeSystem/security-source-type", "4", "Application Server")])),
                ])
            ))
        event.append(("entity", .array(entities)))
        return JSONValue.object(JSONObject(event.map { JSONObject.Member(key: $0.0, value: $0.1) })).serialized()
    }
}
