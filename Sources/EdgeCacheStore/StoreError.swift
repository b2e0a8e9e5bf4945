import EdgeCacheCore

/// Why a store operation failed. FHIR-level outcomes are ``FHIRError``; these are the rest.
package struct StoreError: Error, Sendable, CustomStringConvertible {
    package let message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }
}

/// The origin no longer retains the change log from the requested LSN (HTTP 410).
package struct LogGoneError: Error, Sendable {
    package let requested: Int64
    package let floor: Int64
    package let head: Int64
}

extension Optional {
    func orThrow(_ error: @autoclosure () -> any Error) throws -> Wrapped {
        guard let self else { throw error() }
        return self
    }
}
