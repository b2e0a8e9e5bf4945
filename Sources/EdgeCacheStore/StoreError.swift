import EdgeCacheCore

/// Why a store operation failed. FHIR-level outcomes are ``FHIRError``; these are the rest.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The origin no longer retains the change log from the requested LSN (HTTP 410).
public struct LogGoneError: Error, Sendable {
    public let requested: Int64
    public let floor: Int64
    public let head: Int64
}
