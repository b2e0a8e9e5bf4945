import EdgeCacheCore
import Synchronization

/// The policy registry a node applies now, and where it came from.
///
/// An origin loads it from its policy file at start. An edge starts from the registry it last
/// received (kept in its database), else its local policy file, else the built-in defaults, and
/// replaces it whenever the origin publishes a new version.
public final class PolicyHolder: Sendable {
    public enum Source: String, Sendable {
        case builtin, file, origin, stored
    }

    private let state: Mutex<(registry: PolicyRegistry, source: Source)>

    public init(_ registry: PolicyRegistry = DefaultPolicy.registry, source: Source = .builtin) {
        state = Mutex((registry, source))
    }

    public var registry: PolicyRegistry { state.withLock { $0.registry } }
    public var source: Source { state.withLock { $0.source } }
    public var version: String { state.withLock { $0.registry.version } }

    public func policy(forType type: String) -> ClassPolicy { state.withLock { $0.registry.policy(forType: type) } }

    public func replace(_ registry: PolicyRegistry, source: Source) {
        state.withLock { $0 = (registry, source) }
    }
}
