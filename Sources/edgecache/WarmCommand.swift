import ArgumentParser
import EdgeCacheCore
import EdgeCacheCrypto
import EdgeCacheNode
import EdgeCacheStore
import Foundation

/// `edgecache warm --config FILE --patients LIST`: loads a census list's compartments into an
/// edge's cache (running or stopped node) ahead of a planned downtime.
struct Warm: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load the compartments of a census list of patients into an edge's cache.")

    @Option(name: .long, help: "The edge's config file.") var config: String
    @Option(name: .long, help: "Patient ids: a comma-separated list, or a file with one id per line.") var patients: String

    func run() async throws {
        let nodeConfig: NodeConfig
        do { nodeConfig = try NodeConfig.load(path: config) } catch { throw ValidationError("\(error)") }
        guard nodeConfig.role == .edge, let tenant = nodeConfig.tenant else {
            throw ValidationError("\(config) is not an edge config; warming fills an edge's cache")
        }
        var ids: [String]
        if FileManager.default.fileExists(atPath: patients) {
            guard let text = try? String(contentsOfFile: patients, encoding: .utf8) else {
                throw ValidationError("cannot read \(patients)")
            }
            ids = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        } else {
            ids = patients.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        ids = ids.filter { !$0.isEmpty && !$0.hasPrefix("#") }.map { $0.hasPrefix("Patient/") ? String($0.dropFirst(8)) : $0 }
        guard !ids.isEmpty else { throw ValidationError("no patient ids in '\(patients)'") }
        let store = try openEdgeStore(config)
        let policies = PolicyHolder()
        if let stored = try store.policy.stored() {
            policies.replace(stored, source: .stored)
        } else if let file = nodeConfig.policyFile {
            policies.replace(try PolicyFile.load(path: file), source: .file)
        }
        let origin = try OriginClient(config: nodeConfig, peer: .origin(nodeConfig))
        let started = Date()
        let progress = ProgressLine(label: "warm", total: ids.count)
        let result = await Warmer(store: store, origin: origin, policies: policies, tenant: tenant).warm(patients: ids) {
            done, total, resources in
            if done == total {
                progress.finish(done, detail: "patients, \(resources) resources stored")
            } else {
                progress.update(done, detail: "patients, \(resources) resources stored")
            }
        }
        await origin.shutdown()
        let seconds = Date().timeIntervalSince(started)
        print(
            "warmed \(result.patients) of \(ids.count) patients: \(result.resources) resources stored in \(String(format: "%.1f", seconds)) s"
                + (result.skipped.isEmpty ? "" : "; \(result.skipped.count) skipped (consent blocks them)"))
        auditOperator(
            config, action: "warm", resource: nil,
            detail:
                "patients=\(ids.count) warmed=\(result.patients) resources=\(result.resources) skipped=\(result.skipped.count) failed=\(result.failed.count)"
        )
        if !result.failed.isEmpty {
            FileHandle.standardError.write(
                Data("could not warm \(result.failed.count) patients: \(result.failed.prefix(20).joined(separator: ", "))\n".utf8))
            throw ExitCode(1)
        }
    }
}
