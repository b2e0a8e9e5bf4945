import EdgeCacheCore
import Synchronization

/// The policy registry a node applies now, and where it came from.
///
/// An origin loads it from its policy file at start. An edge starts from the registry it last
/// received (kept in its database), else its local policy file, else the built-in defaults, and
/// replaces it whenever the origin publishes a new version.
package final class PolicyHolder: Sendable {
    package enum Source: String, Sendable {
        case builtin, file, origin, stored
    }

    private let state: Mutex<(registry: PolicyRegistry, source: Source)>

    package init(_ registry: PolicyRegistry = DefaultPolicy.registry, source: Source = .builtin) {
        state = Mutex((registry, source))
    }

    package var registry: PolicyRegistry { state.withLock { $0.registry } }
    package var source: Source { state.withLock { $0.source } }
    package var version: String { state.withLock { $0.registry.version } }

    package func policy(forType type: String) -> ClassPolicy { state.withLock { $0.registry.policy(forType: type) } }

    package func replace(_ registry: PolicyRegistry, source: Source) {
        state.withLock { $0 = (registry, source) }
    }
}
